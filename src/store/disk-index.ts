import { CairnError } from '../core/errors.js';
import { readU64be } from '../util/bytes.js';

/**
 * Layout of a disk index file `<disk>.cidx` (docs/formats/index.md), big-endian:
 *   0  8  magic "CRNIDX\0\1" (the last byte is the format version)
 *   8  4  chunk size in bytes
 *  12  4  reserved, zero
 *  16  8  disk size in bytes
 *  24  8  chunk count = ceil(disk size / chunk size)
 *  32  …  one 32-byte SHA-256 digest per chunk, in disk order; 32 zero bytes mark a hole (all zeros)
 */
export const DISK_INDEX = {
  MAGIC: Buffer.from([0x43, 0x52, 0x4e, 0x49, 0x44, 0x58, 0x00, 0x01]),
  HEADER_SIZE: 32,
  DIGEST_SIZE: 32,
} as const;

const HOLE = Buffer.alloc(DISK_INDEX.DIGEST_SIZE);

/** The chunk digests of one disk, held in one growable buffer (32 bytes per chunk). */
export class DigestList {
  private buf: Buffer;
  private count = 0;

  constructor(initialCount = 16) {
    this.buf = Buffer.alloc(Math.max(1, initialCount) * DISK_INDEX.DIGEST_SIZE);
  }

  static fromBuffer(digests: Buffer): DigestList {
    const list = new DigestList(digests.length / DISK_INDEX.DIGEST_SIZE);
    digests.copy(list.buf);
    list.count = digests.length / DISK_INDEX.DIGEST_SIZE;
    return list;
  }

  get length(): number {
    return this.count;
  }

  /** Sets digest `index` (hex, or undefined for a hole), growing the list as needed. */
  set(index: number, digest: string | undefined): void {
    const needed = (index + 1) * DISK_INDEX.DIGEST_SIZE;
    if (needed > this.buf.length) {
      const grown = Buffer.alloc(Math.max(needed, this.buf.length * 2));
      this.buf.copy(grown);
      this.buf = grown;
    }
    const at = index * DISK_INDEX.DIGEST_SIZE;
    if (digest === undefined) HOLE.copy(this.buf, at);
    else this.buf.write(digest, at, DISK_INDEX.DIGEST_SIZE, 'hex');
    this.count = Math.max(this.count, index + 1);
  }

  /** The hex digest of chunk `index`, or undefined for a hole or an index past the end. */
  get(index: number): string | undefined {
    if (index < 0 || index >= this.count) return undefined;
    const raw = this.buf.subarray(index * DISK_INDEX.DIGEST_SIZE, (index + 1) * DISK_INDEX.DIGEST_SIZE);
    return raw.equals(HOLE) ? undefined : raw.toString('hex');
  }

  isHole(index: number): boolean {
    return this.get(index) === undefined;
  }

  /** Truncates or extends (with holes) to exactly `count` entries. */
  resize(count: number): void {
    if (count > this.count) {
      this.set(count - 1, undefined);
    }
    this.count = count;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.count * DISK_INDEX.DIGEST_SIZE);
  }

  /** Distinct non-hole digests. */
  *digests(): IterableIterator<string> {
    for (let i = 0; i < this.count; i++) {
      const digest = this.get(i);
      if (digest !== undefined) yield digest;
    }
  }
}

export interface DiskIndex {
  chunkSize: number;
  diskSize: number;
  digests: DigestList;
}

export function chunkCountFor(diskSize: number, chunkSize: number): number {
  return Math.ceil(diskSize / chunkSize);
}

export function encodeDiskIndex(index: DiskIndex): Buffer {
  const count = chunkCountFor(index.diskSize, index.chunkSize);
  if (index.digests.length !== count) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `index has ${index.digests.length} digests, a ${index.diskSize}-byte disk needs ${count}`);
  }
  const header = Buffer.alloc(DISK_INDEX.HEADER_SIZE);
  DISK_INDEX.MAGIC.copy(header, 0);
  header.writeUInt32BE(index.chunkSize, 8);
  header.writeBigUInt64BE(BigInt(index.diskSize), 16);
  header.writeBigUInt64BE(BigInt(count), 24);
  return Buffer.concat([header, index.digests.bytes()]);
}

export function decodeDiskIndex(file: Buffer, name: string): DiskIndex {
  const invalid = (reason: string) => new CairnError('ERR_FORMAT_INVALID', `index ${name} is damaged: ${reason}`, { file: name });
  if (file.length < DISK_INDEX.HEADER_SIZE || !file.subarray(0, 8).equals(DISK_INDEX.MAGIC)) throw invalid('bad magic');
  const chunkSize = file.readUInt32BE(8);
  const diskSize = readU64be(file, 16, 'disk size');
  const count = readU64be(file, 24, 'chunk count');
  if (chunkSize === 0 || count !== chunkCountFor(diskSize, chunkSize)) throw invalid('chunk count does not match the disk size');
  if (file.length !== DISK_INDEX.HEADER_SIZE + count * DISK_INDEX.DIGEST_SIZE) throw invalid('wrong length');
  return { chunkSize, diskSize, digests: DigestList.fromBuffer(file.subarray(DISK_INDEX.HEADER_SIZE)) };
}
