import { CairnError } from '../core/errors.js';
import { readU64be } from '../util/bytes.js';

/**
 * Layout of a disk index file `<disk>.cidx` (docs/formats/index.md), big-endian:
 *   0  8  magic "CRNIDX\0" + format version (1, or 2 when the patch table follows)
 *   8  4  chunk size in bytes
 *  12  4  reserved, zero
 *  16  8  disk size in bytes
 *  24  8  chunk count = ceil(disk size / chunk size)
 *  32  …  one 32-byte SHA-256 digest per chunk, in disk order; 32 zero bytes mark a hole (all zeros)
 * Version 2 only, after the digests: the patch table.
 *   8  patched slot count, then per patched slot in ascending order:
 *      8 slot index, 4 patch count, 4 reserved; then per patch:
 *      4 start in the slot, 4 length, 4 offset in the patch chunk, 4 flags (bit 0: zeros), 32 digest
 */
export const DISK_INDEX = {
  MAGIC_PREFIX: Buffer.from([0x43, 0x52, 0x4e, 0x49, 0x44, 0x58, 0x00]),
  VERSION_PLAIN: 1,
  VERSION_PATCHED: 2,
  HEADER_SIZE: 32,
  DIGEST_SIZE: 32,
  SLOT_HEADER_SIZE: 16,
  PATCH_SIZE: 48,
  PATCH_FLAG_ZEROS: 1,
  /** More patches than this on one slot are rewritten as a whole chunk by the writer. */
  MAX_PATCHES_PER_SLOT: 16,
  /** Readers accept up to this many patches on one slot (room for other writers' choices). */
  MAX_DECODED_PATCHES_PER_SLOT: 64,
  /**
   * No index file is read past this size: it is read whole into memory (2 GiB is also what
   * readFile accepted before, so every index an earlier release could read still reads).
   */
  MAX_FILE_BYTES: 2 ** 31 - 1,
} as const;

/**
 * Bytes [start, start + length) of a slot (a chunk-sized stretch of the disk) taken from another
 * chunk than the slot's own: how a changed-block incremental records a few changed blocks without
 * rewriting the whole chunk around them. Patches apply in order over the slot's chunk.
 */
export interface SlotPatch {
  start: number;
  length: number;
  /** The chunk holding the bytes; undefined when the range reads as zeros. */
  digest: string | undefined;
  /** Where the bytes begin inside that chunk. */
  chunkOffset: number;
}

export type SlotPatches = ReadonlyMap<number, readonly SlotPatch[]>;

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
  /** Patched slots (index version 2); absent or empty for a plain index. */
  patches?: SlotPatches;
}

const NO_PATCHES: readonly SlotPatch[] = [];

export function patchesOf(index: DiskIndex, slot: number): readonly SlotPatch[] {
  return index.patches?.get(slot) ?? NO_PATCHES;
}

/** True when slot `slot` reads as zeros from end to end. */
export function isHoleSlot(index: DiskIndex, slot: number): boolean {
  return index.digests.isHole(slot) && patchesOf(index, slot).every((patch) => patch.digest === undefined);
}

/** Every chunk a disk references, with the disk offset of each use (slot chunks and patch chunks). */
export function* chunkUses(index: DiskIndex): IterableIterator<{ digest: string; offset: number }> {
  for (let slot = 0; slot < index.digests.length; slot++) {
    const digest = index.digests.get(slot);
    if (digest !== undefined) yield { digest, offset: slot * index.chunkSize };
  }
  for (const [slot, patches] of index.patches ?? []) {
    for (const patch of patches) {
      if (patch.digest !== undefined) yield { digest: patch.digest, offset: slot * index.chunkSize + patch.start };
    }
  }
}

/** The distinct chunks a disk references. */
export function referencedDigests(index: DiskIndex): Set<string> {
  const digests = new Set<string>();
  for (const use of chunkUses(index)) digests.add(use.digest);
  return digests;
}

export function chunkCountFor(diskSize: number, chunkSize: number): number {
  return Math.ceil(diskSize / chunkSize);
}

/**
 * The sizes an index file of a `diskSize`-byte disk can have: the digests exactly (version 1) up to
 * a patch table with every slot patched to the readers' limit (version 2). A reader checks the
 * file's size against these before it allocates anything.
 */
export function indexFileBounds(diskSize: number, chunkSize: number): { minBytes: number; maxBytes: number } {
  const count = chunkCountFor(diskSize, chunkSize);
  const minBytes = DISK_INDEX.HEADER_SIZE + count * DISK_INDEX.DIGEST_SIZE;
  const perSlot = DISK_INDEX.SLOT_HEADER_SIZE + DISK_INDEX.MAX_DECODED_PATCHES_PER_SLOT * DISK_INDEX.PATCH_SIZE;
  return { minBytes, maxBytes: minBytes + 8 + count * perSlot };
}

export function encodeDiskIndex(index: DiskIndex): Buffer {
  const count = chunkCountFor(index.diskSize, index.chunkSize);
  if (index.digests.length !== count) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `index has ${index.digests.length} digests, a ${index.diskSize}-byte disk needs ${count}`);
  }
  const patched = [...(index.patches ?? [])].filter(([, patches]) => patches.length > 0).sort(([a], [b]) => a - b);
  const header = Buffer.alloc(DISK_INDEX.HEADER_SIZE);
  DISK_INDEX.MAGIC_PREFIX.copy(header, 0);
  // A plain index stays version 1, readable by every Cairn release.
  header.writeUInt8(patched.length > 0 ? DISK_INDEX.VERSION_PATCHED : DISK_INDEX.VERSION_PLAIN, 7);
  header.writeUInt32BE(index.chunkSize, 8);
  header.writeBigUInt64BE(BigInt(index.diskSize), 16);
  header.writeBigUInt64BE(BigInt(count), 24);
  if (patched.length === 0) return Buffer.concat([header, index.digests.bytes()]);
  return Buffer.concat([header, index.digests.bytes(), encodePatchTable(patched, index, count)]);
}

function encodePatchTable(patched: [number, readonly SlotPatch[]][], index: DiskIndex, count: number): Buffer {
  const patchCount = patched.reduce((sum, [, patches]) => sum + patches.length, 0);
  const table = Buffer.alloc(8 + patched.length * DISK_INDEX.SLOT_HEADER_SIZE + patchCount * DISK_INDEX.PATCH_SIZE);
  table.writeBigUInt64BE(BigInt(patched.length), 0);
  let at = 8;
  for (const [slot, patches] of patched) {
    const slotLength = Math.min(index.chunkSize, index.diskSize - slot * index.chunkSize);
    if (slot >= count) throw new CairnError('ERR_INVALID_ARGUMENT', `patch on slot ${slot} beyond the disk's ${count} slots`);
    table.writeBigUInt64BE(BigInt(slot), at);
    table.writeUInt32BE(patches.length, at + 8);
    at += DISK_INDEX.SLOT_HEADER_SIZE;
    for (const patch of patches) {
      if (patch.length <= 0 || patch.start < 0 || patch.start + patch.length > slotLength) {
        throw new CairnError('ERR_INVALID_ARGUMENT', `patch ${patch.start}+${patch.length} does not fit slot ${slot}`);
      }
      table.writeUInt32BE(patch.start, at);
      table.writeUInt32BE(patch.length, at + 4);
      table.writeUInt32BE(patch.digest === undefined ? 0 : patch.chunkOffset, at + 8);
      table.writeUInt32BE(patch.digest === undefined ? DISK_INDEX.PATCH_FLAG_ZEROS : 0, at + 12);
      if (patch.digest !== undefined) table.write(patch.digest, at + 16, DISK_INDEX.DIGEST_SIZE, 'hex');
      at += DISK_INDEX.PATCH_SIZE;
    }
  }
  return table;
}

export function decodeDiskIndex(file: Buffer, name: string): DiskIndex {
  const invalid = (reason: string) => new CairnError('ERR_FORMAT_INVALID', `index ${name} is damaged: ${reason}`, { file: name });
  if (file.length < DISK_INDEX.HEADER_SIZE || !file.subarray(0, 7).equals(DISK_INDEX.MAGIC_PREFIX)) throw invalid('bad magic');
  const version = file.readUInt8(7);
  if (version !== DISK_INDEX.VERSION_PLAIN && version !== DISK_INDEX.VERSION_PATCHED) throw invalid(`unknown format version ${version}`);
  const chunkSize = file.readUInt32BE(8);
  const diskSize = readU64be(file, 16, 'disk size');
  const count = readU64be(file, 24, 'chunk count');
  if (chunkSize === 0 || count !== chunkCountFor(diskSize, chunkSize)) throw invalid('chunk count does not match the disk size');
  const digestsEnd = DISK_INDEX.HEADER_SIZE + count * DISK_INDEX.DIGEST_SIZE;
  if (version === DISK_INDEX.VERSION_PLAIN ? file.length !== digestsEnd : file.length < digestsEnd + 8) throw invalid('wrong length');
  const digests = DigestList.fromBuffer(file.subarray(DISK_INDEX.HEADER_SIZE, digestsEnd));
  if (version === DISK_INDEX.VERSION_PLAIN) return { chunkSize, diskSize, digests };
  const patches = decodePatchTable(file.subarray(digestsEnd), { chunkSize, diskSize, count }, invalid);
  return { chunkSize, diskSize, digests, patches };
}

function decodePatchTable(
  table: Buffer,
  disk: { chunkSize: number; diskSize: number; count: number },
  invalid: (reason: string) => Error,
): Map<number, SlotPatch[]> {
  const patched = readU64be(table, 0, 'patched slot count');
  if (patched > disk.count) throw invalid('more patched slots than slots');
  const patches = new Map<number, SlotPatch[]>();
  let at = 8;
  let previousSlot = -1;
  for (let n = 0; n < patched; n++) {
    if (at + DISK_INDEX.SLOT_HEADER_SIZE > table.length) throw invalid('patch table is truncated');
    const slot = readU64be(table, at, 'slot index');
    const patchCount = table.readUInt32BE(at + 8);
    at += DISK_INDEX.SLOT_HEADER_SIZE;
    if (slot <= previousSlot || slot >= disk.count) throw invalid(`patched slot ${slot} out of order or beyond the disk`);
    if (patchCount === 0 || patchCount > DISK_INDEX.MAX_DECODED_PATCHES_PER_SLOT) throw invalid(`slot ${slot} has ${patchCount} patches`);
    if (at + patchCount * DISK_INDEX.PATCH_SIZE > table.length) throw invalid('patch table is truncated');
    const slotLength = Math.min(disk.chunkSize, disk.diskSize - slot * disk.chunkSize);
    const list: SlotPatch[] = [];
    for (let p = 0; p < patchCount; p++, at += DISK_INDEX.PATCH_SIZE) {
      const start = table.readUInt32BE(at);
      const length = table.readUInt32BE(at + 4);
      const chunkOffset = table.readUInt32BE(at + 8);
      const zeros = (table.readUInt32BE(at + 12) & DISK_INDEX.PATCH_FLAG_ZEROS) !== 0;
      if (length === 0 || start + length > slotLength) throw invalid(`patch ${start}+${length} does not fit slot ${slot}`);
      const raw = table.subarray(at + 16, at + 16 + DISK_INDEX.DIGEST_SIZE);
      if (zeros !== raw.equals(HOLE)) throw invalid(`patch on slot ${slot} has inconsistent zero flag`);
      list.push({ start, length, chunkOffset, digest: zeros ? undefined : raw.toString('hex') });
    }
    patches.set(slot, list);
    previousSlot = slot;
  }
  if (at !== table.length) throw invalid('wrong length');
  return patches;
}
