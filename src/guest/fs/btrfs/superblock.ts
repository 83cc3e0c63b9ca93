import type { BlockReader } from '../../../core/block-reader.js';
import type { CairnError } from '../../../core/errors.js';
import { checksumKind, checksumMatches, type ChecksumKind } from './checksum.js';
import { formatInvalid, unsupported } from './errors.js';
import { DEV_ITEM, FEATURE_INCOMPAT, INCOMPAT_REFUSED, SUPERBLOCK } from './layout.js';

/** The superblock's geometry and features, every field checked against the others and the volume. */
export interface Superblock {
  /** Volume byte offset the copy was read from (the primary or a mirror). */
  readonly offset: number;
  readonly fsid: Buffer;
  /** The uuid tree block headers carry: metadata_uuid with METADATA_UUID, else the fsid. */
  readonly metadataUuid: Buffer;
  readonly generation: bigint;
  readonly rootTree: number;
  readonly rootLevel: number;
  readonly chunkRoot: number;
  readonly chunkRootLevel: number;
  readonly chunkRootGeneration: bigint;
  readonly logRoot: number;
  readonly totalBytes: number;
  readonly numDevices: number;
  readonly sectorSize: number;
  readonly nodeSize: number;
  readonly incompat: number;
  readonly compatRo: number;
  readonly csum: ChecksumKind;
  readonly sysChunkArray: Buffer;
  readonly devid: bigint;
  readonly devUuid: Buffer;
  readonly label: string;
  readonly uuid: string;
}

export function hasIncompat(sb: Superblock, feature: keyof typeof FEATURE_INCOMPAT): boolean {
  return (sb.incompat & FEATURE_INCOMPAT[feature]) !== 0;
}

/** True when the bytes at volume offset 64 KiB carry the btrfs magic. */
export function hasBtrfsMagic(bytes: Buffer): boolean {
  return bytes.length >= SUPERBLOCK.magic + 8 && bytes.subarray(SUPERBLOCK.magic, SUPERBLOCK.magic + 8).equals(SUPERBLOCK.MAGIC);
}

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/**
 * Reads the primary superblock and, if it is missing or damaged, the mirrors at 64 MiB and 256 GiB
 * that lie inside the volume (the newest valid one, as btrfs_read_dev_super picks). Unsupported
 * features are refused from whichever copy is used; a damaged primary with no valid mirror
 * reports the primary's damage.
 */
export async function readSuperblock(volume: BlockReader, name: string): Promise<Superblock> {
  let primaryError: CairnError | undefined;
  const mirrors: Superblock[] = [];
  for (const [index, offset] of SUPERBLOCK.OFFSETS.entries()) {
    if (offset + SUPERBLOCK.SIZE > volume.size) break;
    try {
      const sb = parseSuperblock(await volume.read(offset, SUPERBLOCK.SIZE), offset, volume.size, name);
      if (index === 0) return sb;
      mirrors.push(sb);
    } catch (err) {
      if (index === 0) primaryError = err as CairnError;
      else if ((err as CairnError).code === 'ERR_UNSUPPORTED') throw err;
    }
  }
  const best = mirrors.sort((a, b) => (a.generation > b.generation ? -1 : a.generation < b.generation ? 1 : 0))[0];
  if (best) return best;
  throw primaryError ?? formatInvalid(name, 'superblock', 'the volume is too small to hold one');
}

/** Parses and validates one superblock copy (`bytes` = the 4096 bytes read at volume byte `offset`). */
export function parseSuperblock(bytes: Buffer, offset: number, volumeSize: number, volume: string): Superblock {
  const where = offset === SUPERBLOCK.OFFSETS[0] ? 'superblock' : `superblock mirror at ${offset}`;
  const bad = (problem: string, context = {}): CairnError => formatInvalid(volume, where, problem, context);
  if (bytes.length < SUPERBLOCK.SIZE || !hasBtrfsMagic(bytes)) throw bad('no btrfs magic');
  const csum = checksumKind(bytes.readUInt16LE(SUPERBLOCK.csum_type), volume);
  if (!checksumMatches(csum, bytes, SUPERBLOCK.CSUM_START, SUPERBLOCK.SIZE, bytes, SUPERBLOCK.csum))
    throw bad(`${csum.name} checksum mismatch`);
  const u64 = (field: number, what: string): number => {
    const value = bytes.readBigUInt64LE(field);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${what} ${value} is out of range`);
    return Number(value);
  };
  if (u64(SUPERBLOCK.bytenr, 'bytenr') !== offset) throw bad(`records byte ${u64(SUPERBLOCK.bytenr, 'bytenr')}, read at ${offset}`);
  const flags = bytes.readBigUInt64LE(SUPERBLOCK.flags);
  if (flags & (SUPERBLOCK.FLAG_METADUMP | SUPERBLOCK.FLAG_METADUMP_V2)) {
    throw unsupported(volume, 'metadump', 'a btrfs-image metadata dump holds no file data');
  }
  if (flags & (SUPERBLOCK.FLAG_CHANGING_FSID | SUPERBLOCK.FLAG_CHANGING_FSID_V2)) {
    throw unsupported(volume, 'changing fsid', 'btrfstune was interrupted while changing the fsid');
  }

  const incompat = checkIncompat(bytes.readBigUInt64LE(SUPERBLOCK.incompat_flags), volume);
  const sectorSize = bytes.readUInt32LE(SUPERBLOCK.sectorsize);
  const nodeSize = bytes.readUInt32LE(SUPERBLOCK.nodesize);
  // btrfs_validate_super: sector sizes 4 KiB to 64 KiB, nodes from a sector up to 64 KiB.
  if (!isPowerOfTwo(sectorSize) || sectorSize < 4096 || sectorSize > 65536) throw bad(`sector size ${sectorSize} is invalid`);
  if (!isPowerOfTwo(nodeSize) || nodeSize < sectorSize || nodeSize > 65536) throw bad(`node size ${nodeSize} is invalid`);
  const totalBytes = u64(SUPERBLOCK.total_bytes, 'total_bytes');
  const numDevices = u64(SUPERBLOCK.num_devices, 'num_devices');
  if (numDevices < 1 || numDevices > 65536) throw bad(`device count ${numDevices} is invalid`);
  const rootTree = u64(SUPERBLOCK.root, 'root');
  const chunkRoot = u64(SUPERBLOCK.chunk_root, 'chunk_root');
  const logRoot = u64(SUPERBLOCK.log_root, 'log_root');
  for (const [what, addr] of [
    ['root', rootTree],
    ['chunk root', chunkRoot],
  ] as const) {
    if (addr === 0 || addr % sectorSize !== 0) throw bad(`${what} address ${addr} is not sector-aligned`);
  }
  const rootLevel = bytes[SUPERBLOCK.root_level]!;
  const chunkRootLevel = bytes[SUPERBLOCK.chunk_root_level]!;
  if (rootLevel > SUPERBLOCK.MAX_LEVEL || chunkRootLevel > SUPERBLOCK.MAX_LEVEL) {
    throw bad(`tree levels ${rootLevel}/${chunkRootLevel} exceed ${SUPERBLOCK.MAX_LEVEL}`);
  }
  const sysSize = bytes.readUInt32LE(SUPERBLOCK.sys_chunk_array_size);
  if (sysSize > SUPERBLOCK.SYS_CHUNK_ARRAY_MAX) throw bad(`sys_chunk_array_size ${sysSize} exceeds ${SUPERBLOCK.SYS_CHUNK_ARRAY_MAX}`);
  const fsid = Buffer.from(bytes.subarray(SUPERBLOCK.fsid, SUPERBLOCK.fsid + 16));
  const dev = SUPERBLOCK.dev_item;
  if (!bytes.subarray(dev + DEV_ITEM.fsid, dev + DEV_ITEM.fsid + 16).equals(fsid) && !(incompat & FEATURE_INCOMPAT.METADATA_UUID)) {
    throw bad('the device item names another filesystem');
  }
  const metadataUuid =
    incompat & FEATURE_INCOMPAT.METADATA_UUID ? Buffer.from(bytes.subarray(SUPERBLOCK.metadata_uuid, SUPERBLOCK.metadata_uuid + 16)) : fsid;
  if (volumeSize < SUPERBLOCK.OFFSETS[0] + SUPERBLOCK.SIZE) throw bad('the volume is too small');
  const labelBytes = bytes.subarray(SUPERBLOCK.label, SUPERBLOCK.label + SUPERBLOCK.LABEL_SIZE);
  const labelEnd = labelBytes.indexOf(0);
  return {
    offset,
    fsid,
    metadataUuid,
    generation: bytes.readBigUInt64LE(SUPERBLOCK.generation),
    rootTree,
    rootLevel,
    chunkRoot,
    chunkRootLevel,
    chunkRootGeneration: bytes.readBigUInt64LE(SUPERBLOCK.chunk_root_generation),
    logRoot,
    totalBytes,
    numDevices,
    sectorSize,
    nodeSize,
    incompat,
    compatRo: Number(bytes.readBigUInt64LE(SUPERBLOCK.compat_ro_flags) & 0xffffffffn),
    csum,
    sysChunkArray: Buffer.from(bytes.subarray(SUPERBLOCK.sys_chunk_array, SUPERBLOCK.sys_chunk_array + sysSize)),
    devid: bytes.readBigUInt64LE(dev + DEV_ITEM.devid),
    devUuid: Buffer.from(bytes.subarray(dev + DEV_ITEM.uuid, dev + DEV_ITEM.uuid + 16)),
    label: labelBytes.subarray(0, labelEnd < 0 ? labelBytes.length : labelEnd).toString('utf8'),
    uuid: formatUuid(fsid),
  };
}

function checkIncompat(incompat: bigint, volume: string): number {
  let known = 0n;
  for (const bit of Object.values(FEATURE_INCOMPAT)) known |= BigInt(bit);
  const unknown = incompat & ~known;
  if (unknown !== 0n) {
    throw unsupported(volume, `incompat 0x${unknown.toString(16)}`, 'an incompatible feature this reader does not know', {
      incompat: `0x${incompat.toString(16)}`,
    });
  }
  const bits = Number(incompat);
  for (const name of INCOMPAT_REFUSED) {
    if (bits & FEATURE_INCOMPAT[name]) throw unsupported(volume, name.toLowerCase().replace(/_/g, '-'), 'files cannot be read without it');
  }
  return bits;
}

export function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
