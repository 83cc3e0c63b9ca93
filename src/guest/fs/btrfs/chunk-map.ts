import { formatInvalid, unsupported } from './errors.js';
import { BLOCK_GROUP, CHUNK, DISK_KEY, KEY_TYPE } from './layout.js';
import type { Superblock } from './superblock.js';

/** One chunk (struct btrfs_chunk): a logical range and where its copies lie on this device. */
export interface Chunk {
  readonly logical: number;
  readonly length: number;
  readonly type: number;
  /** Volume byte offset of each copy (one for single, two for DUP). */
  readonly copies: readonly number[];
}

/** Chunks a filesystem may have before the map refuses it (a chunk is usually 256 MiB to 1 GiB). */
const MAX_CHUNKS = 100_000;

const PROFILE_NAMES: [number, string][] = [
  [BLOCK_GROUP.RAID0, 'raid0'],
  [BLOCK_GROUP.RAID1, 'raid1'],
  [BLOCK_GROUP.RAID10, 'raid10'],
  [BLOCK_GROUP.RAID5, 'raid5'],
  [BLOCK_GROUP.RAID6, 'raid6'],
  [BLOCK_GROUP.RAID1C3, 'raid1c3'],
  [BLOCK_GROUP.RAID1C4, 'raid1c4'],
];

/**
 * The logical-to-physical map ("Chunk tree" in the on-disk format): every tree block and data
 * extent is addressed logically. Only the single and DUP profiles of this one device are mapped;
 * striped and mirrored profiles and stripes on other devices are refused, naming the chunk.
 */
export class ChunkMap {
  private chunks: Chunk[] = [];

  constructor(
    private readonly sb: Superblock,
    private readonly volumeSize: number,
    private readonly name: string,
  ) {}

  get count(): number {
    return this.chunks.length;
  }

  /** Bootstraps from the superblock's sys_chunk_array: (disk key, chunk) pairs for the SYSTEM chunks. */
  loadSysChunkArray(): void {
    const bytes = this.sb.sysChunkArray;
    let at = 0;
    while (at < bytes.length) {
      const where = `superblock sys_chunk_array at ${at}`;
      if (at + DISK_KEY.SIZE + CHUNK.SIZE > bytes.length) throw formatInvalid(this.name, where, 'an entry is truncated');
      const type = bytes[at + DISK_KEY.type]!;
      if (type !== KEY_TYPE.CHUNK_ITEM) throw formatInvalid(this.name, where, `key type ${type} is not a chunk item`);
      const logical = bytes.readBigUInt64LE(at + DISK_KEY.offset);
      at += DISK_KEY.SIZE;
      const size = chunkItemSize(bytes, at, bytes.length - at, this.name, where);
      this.add(parseChunk(bytes.subarray(at, at + size), logical, this.sb, this.volumeSize, this.name));
      at += size;
    }
    if (this.chunks.length === 0) throw formatInvalid(this.name, 'superblock sys_chunk_array', 'holds no chunk');
  }

  /** Adds a chunk item's chunk; the sys_chunk_array's copies come again from the chunk tree. */
  add(chunk: Chunk): void {
    const i = this.indexOf(chunk.logical);
    const existing = i >= 0 ? this.chunks[i] : undefined;
    if (existing && existing.logical === chunk.logical) {
      if (existing.length !== chunk.length || existing.copies[0] !== chunk.copies[0]) {
        throw formatInvalid(this.name, `chunk at ${chunk.logical}`, 'the chunk tree and the superblock disagree about it');
      }
      return;
    }
    if (existing && existing.logical + existing.length > chunk.logical) {
      throw formatInvalid(this.name, `chunk at ${chunk.logical}`, `overlaps the chunk at ${existing.logical}`);
    }
    const next = this.chunks[i + 1];
    if (next && chunk.logical + chunk.length > next.logical) {
      throw formatInvalid(this.name, `chunk at ${chunk.logical}`, `overlaps the chunk at ${next.logical}`);
    }
    if (this.chunks.length >= MAX_CHUNKS) throw formatInvalid(this.name, 'chunk tree', `holds more than ${MAX_CHUNKS} chunks`);
    this.chunks.splice(i + 1, 0, chunk);
  }

  /**
   * The volume offsets of each copy of logical [logical, logical+length), which must lie inside one
   * chunk (tree blocks and extents never cross one). `where` names what is being read.
   */
  map(logical: number, length: number, where: string): readonly number[] {
    const chunk = this.chunks[this.indexOf(logical)];
    if (!chunk || logical < chunk.logical || logical + length > chunk.logical + chunk.length) {
      throw formatInvalid(this.name, where, `logical range ${logical}+${length} lies in no chunk`, { logical, length });
    }
    const delta = logical - chunk.logical;
    return chunk.copies.map((copy) => copy + delta);
  }

  /** The index of the last chunk starting at or before `logical`, or -1. */
  private indexOf(logical: number): number {
    let lo = 0;
    let hi = this.chunks.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.chunks[mid]!.logical <= logical) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }
}

/** The size of the chunk item at `bytes[at]` (the 48-byte head plus its stripes), checked against `room`. */
export function chunkItemSize(bytes: Buffer, at: number, room: number, volume: string, where: string): number {
  if (room < CHUNK.SIZE) throw formatInvalid(volume, where, 'the chunk item is truncated');
  const stripes = bytes.readUInt16LE(at + CHUNK.num_stripes);
  if (stripes === 0) throw formatInvalid(volume, where, 'the chunk has no stripe');
  const total = CHUNK.SIZE + stripes * CHUNK.STRIPE_SIZE;
  if (total > room) throw formatInvalid(volume, where, `${stripes} stripes do not fit the item`);
  return total;
}

/**
 * Parses one chunk item (`bytes` = exactly the item) at logical address `logical`, checking what
 * btrfs_check_chunk_valid checks and refusing the profiles and devices this reader cannot map.
 */
export function parseChunk(bytes: Buffer, logical: bigint, sb: Superblock, volumeSize: number, volume: string): Chunk {
  const where = `chunk at ${logical}`;
  const bad = (problem: string): Error => formatInvalid(volume, where, problem, { logical: String(logical) });
  if (logical > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('the logical address is out of range');
  const start = Number(logical);
  const length = bytes.readBigUInt64LE(CHUNK.length);
  if (length === 0n || length > BigInt(Number.MAX_SAFE_INTEGER) || Number(length) % sb.sectorSize !== 0 || start % sb.sectorSize !== 0) {
    throw bad(`length ${length} is invalid`);
  }
  if (start + Number(length) > Number.MAX_SAFE_INTEGER) throw bad('the chunk ends beyond 2^53');
  const type = Number(bytes.readBigUInt64LE(CHUNK.type) & 0xffffffffn);
  const stripes = bytes.readUInt16LE(CHUNK.num_stripes);
  if (bytes.length < CHUNK.SIZE + stripes * CHUNK.STRIPE_SIZE) throw bad(`${stripes} stripes do not fit the item`);
  if ((type & (BLOCK_GROUP.DATA | BLOCK_GROUP.SYSTEM | BLOCK_GROUP.METADATA)) === 0) throw bad(`type 0x${type.toString(16)} names no kind`);
  for (const [bit, profile] of PROFILE_NAMES) {
    if (type & bit) throw unsupported(volume, profile, `${where} uses the ${profile} profile; only single and DUP are read`);
  }
  const dup = (type & BLOCK_GROUP.DUP) !== 0;
  if (stripes !== (dup ? 2 : 1)) throw bad(`${stripes} stripes for the ${dup ? 'DUP' : 'single'} profile`);
  const copies: number[] = [];
  for (let i = 0; i < stripes; i++) {
    const s = CHUNK.SIZE + i * CHUNK.STRIPE_SIZE;
    const devid = bytes.readBigUInt64LE(s + CHUNK.stripe_devid);
    if (devid !== sb.devid) {
      throw unsupported(volume, 'multi-device', `${where} lies on device ${devid}; this volume is device ${sb.devid} of ${sb.numDevices}`);
    }
    const offset = bytes.readBigUInt64LE(s + CHUNK.stripe_offset);
    if (offset + length > BigInt(volumeSize)) throw bad(`copy ${i} at ${offset}+${length} lies beyond the ${volumeSize}-byte volume`);
    copies.push(Number(offset));
  }
  return { logical: start, length: Number(length), type, copies };
}
