// The checksums btrfs stores in tree block headers, the superblock and the csum tree
// (btrfs_tree.h BTRFS_CSUM_TYPE_*; the kernel's fs/btrfs/disk-io.c csum_tree_block). Each is stored
// in the first csum_size bytes of a 32-byte field: crc32c and xxhash64 little-endian, sha256 and
// blake2b-256 as their digest bytes.
import { createHash } from 'node:crypto';
import { crc32cUpdate } from '../../../util/crc32c.js';
import { CSUM_NAMES, CSUM_SIZE, CSUM_TYPE } from './layout.js';
import { unsupported } from './errors.js';
import { blake2b256 } from './blake2b.js';
import { xxhash64 } from './xxhash64.js';

/** Computes the digest of bytes[start, end) into `out` at `at` (csum_size bytes). */
export type ChecksumFunction = (bytes: Buffer, start: number, end: number, out: Buffer, at: number) => void;

export interface ChecksumKind {
  readonly type: number;
  readonly name: string;
  readonly size: number;
  readonly compute: ChecksumFunction;
}

const IMPLEMENTED: Record<number, ChecksumFunction> = {
  [CSUM_TYPE.CRC32C]: (bytes, start, end, out, at) => {
    out.writeUInt32LE(~crc32cUpdate(0xffffffff, bytes, start, end) >>> 0, at);
  },
  [CSUM_TYPE.XXHASH64]: (bytes, start, end, out, at) => {
    out.writeBigUInt64LE(xxhash64(bytes, start, end), at);
  },
  [CSUM_TYPE.SHA256]: (bytes, start, end, out, at) => {
    createHash('sha256').update(bytes.subarray(start, end)).digest().copy(out, at);
  },
  [CSUM_TYPE.BLAKE2B_256]: blake2b256,
};

/** The checksum the superblock names (every type btrfs defines; an unknown one is refused). */
export function checksumKind(type: number, volume: string): ChecksumKind {
  const size = CSUM_SIZE[type as keyof typeof CSUM_SIZE];
  const name = CSUM_NAMES[type as keyof typeof CSUM_NAMES];
  if (size === undefined || name === undefined) {
    throw unsupported(volume, `csum type ${type}`, 'a checksum type this reader does not know', { csumType: type });
  }
  const compute = IMPLEMENTED[type];
  if (!compute) throw unsupported(volume, `csum ${name}`, `metadata and data checksums use ${name}, which this reader does not compute`);
  return { type, name, size, compute };
}

/** True when the csum_size bytes at `stored[at]` are the checksum of bytes[start, end). */
export function checksumMatches(kind: ChecksumKind, bytes: Buffer, start: number, end: number, stored: Buffer, at: number): boolean {
  const actual = Buffer.allocUnsafe(kind.size);
  kind.compute(bytes, start, end, actual, 0);
  return actual.equals(stored.subarray(at, at + kind.size));
}
