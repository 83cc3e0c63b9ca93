import { BoundedCache } from '../../../util/bounded-cache.js';
import { decodeDirBlock, dirBlockFootprint, findInBlock, parseDirents, type DirBlock, type DirEntryRecord } from './directory.js';
import { formatInvalid } from './errors.js';
import type { FileData } from './file-data.js';
import { htreeLookup, SCAN } from './htree.js';
import { inlineContent } from './inline-data.js';
import type { Ext4Inode } from './inode.js';
import { INLINE_DIR, INODE_FLAGS } from './layout.js';
import { hasCompat, type Superblock } from './superblock.js';
import type { VolumeIO } from './volume-io.js';

/** Blocks mapped per step of a listing, and read per volume read (128 KiB of 4 KiB blocks). */
const MAP_WINDOW_BLOCKS = 4096;
const BATCH_BYTES = 128 * 1024;
/**
 * Directories up to this size are decoded whole and cached as one value: the FUSE pattern (list,
 * then look up every name) then costs one cache probe per lookup instead of a walk of the block map.
 */
const SMALL_DIR_BYTES = 64 * 1024;

/**
 * Directory listings and lookups. A listing reads every mapped block in order, a batch of blocks per
 * volume read, and skips holes; memory stays one batch whatever the directory's size. A lookup uses
 * the hash tree where there is one and falls back to the same scan where the kernel would.
 */
export class DirReader {
  private readonly blocks: BoundedCache<string, DirBlock>;
  private readonly batches: BoundedCache<string, DirBlock[]>;
  private readonly small: BoundedCache<number, DirBlock[]>;

  constructor(
    private readonly io: VolumeIO,
    private readonly sb: Superblock,
    private readonly data: FileData,
    cacheBytes: number,
  ) {
    const listSize = (list: DirBlock[]): number => list.reduce((n, b) => n + dirBlockFootprint(b), 64);
    this.blocks = new BoundedCache(Math.floor(cacheBytes / 4), dirBlockFootprint);
    this.batches = new BoundedCache(Math.floor((cacheBytes * 3) / 8), listSize);
    this.small = new BoundedCache(Math.floor((cacheBytes * 3) / 8), listSize);
  }

  isHtree(dir: Ext4Inode): boolean {
    return hasCompat(this.sb, 'dir_index') && (dir.flags & INODE_FLAGS.INDEX) !== 0;
  }

  /**
   * Every live entry of `dir` in on-disk order, a block's worth at a time (views into cached blocks:
   * copy before handing out). Yielding arrays keeps the per-entry cost off the async iterator.
   */
  async *entries(dir: Ext4Inode): AsyncGenerator<readonly DirEntryRecord[]> {
    if (dir.flags & INODE_FLAGS.INLINE_DATA) {
      yield this.inlineEntries(dir);
      return;
    }
    if (dir.size <= SMALL_DIR_BYTES) {
      for (const block of await this.smallDir(dir)) if (block.entries.length > 0) yield block.entries;
      return;
    }
    for await (const block of this.blocksOf(dir)) if (block.entries.length > 0) yield block.entries;
  }

  private smallDir(dir: Ext4Inode): Promise<DirBlock[]> {
    return this.small.get(dir.ino, async () => {
      const all: DirBlock[] = [];
      for await (const block of this.blocksOf(dir)) all.push(block);
      return all;
    });
  }

  /** The decoded blocks of a block-mapped directory, in logical order, holes skipped. */
  private async *blocksOf(dir: Ext4Inode): AsyncGenerator<DirBlock> {
    const bs = this.sb.blockSize;
    const total = Math.ceil(dir.size / bs);
    const batchBlocks = Math.max(1, Math.floor(BATCH_BYTES / bs));
    for (let window = 0; window < total; window += MAP_WINDOW_BLOCKS) {
      const runs = await this.data.map(dir, window, Math.min(total, window + MAP_WINDOW_BLOCKS));
      for (const run of runs) {
        // Holes (and unwritten runs, which hold nothing yet) have no entries: ext4_readdir skips them too.
        if (run.physical < 0 || run.unwritten) continue;
        for (let k = 0; k < run.count; k += batchBlocks) {
          const count = Math.min(batchBlocks, run.count - k);
          yield* await this.readBatch(dir, run.logical + k, run.physical + k, count);
        }
      }
    }
  }

  /** The entry called `name` in `dir`, or undefined. */
  async lookup(dir: Ext4Inode, name: Buffer): Promise<DirEntryRecord | undefined> {
    if (this.isHtree(dir) && !(dir.flags & (INODE_FLAGS.INLINE_DATA | INODE_FLAGS.CASEFOLD))) {
      const bs = this.sb.blockSize;
      const found = await htreeLookup(
        { blocks: Math.ceil(dir.size / bs), readBlock: (logical) => this.readBlock(dir, logical) },
        name,
        this.sb,
      );
      if (found !== SCAN) return found;
    }
    if (dir.flags & INODE_FLAGS.INLINE_DATA) return this.inlineEntries(dir).find((e) => e.name.equals(name));
    if (dir.size <= SMALL_DIR_BYTES) {
      for (const block of await this.smallDir(dir)) {
        const found = findInBlock(block, name);
        if (found) return found;
      }
      return undefined;
    }
    for await (const block of this.blocksOf(dir)) {
      const found = findInBlock(block, name);
      if (found) return found;
    }
    return undefined;
  }

  private readBatch(dir: Ext4Inode, logical: number, physical: number, count: number): Promise<DirBlock[]> {
    return this.batches.get(`${dir.ino}:${logical}:${physical}:${count}`, async () => {
      const bytes = await this.io.readBlocks(physical, count, `inode ${dir.ino} directory block ${logical}`);
      const bs = this.sb.blockSize;
      const htree = this.isHtree(dir);
      const list: DirBlock[] = [];
      for (let i = 0; i < count; i++)
        list.push(decodeDirBlock(bytes.subarray(i * bs, (i + 1) * bs), logical + i, dir, htree, this.sb, this.io.name));
      return list;
    });
  }

  /** One block by logical number (htree lookups), mapped, read, checked and cached. */
  private readBlock(dir: Ext4Inode, logical: number): Promise<DirBlock> {
    return this.blocks.get(`${dir.ino}:${logical}`, async () => {
      const [run] = await this.data.map(dir, logical, logical + 1);
      const where = `inode ${dir.ino} directory block ${logical}`;
      if (!run || run.physical < 0 || run.unwritten)
        throw formatInvalid(this.io.name, where, 'is a hole the hash tree points at', { ino: dir.ino });
      const bytes = await this.io.readBlocks(run.physical, 1, where);
      return decodeDirBlock(bytes, logical, dir, this.isHtree(dir), this.sb, this.io.name);
    });
  }

  /** inlinedata.rst "Inline Directories": the parent's number, dirents to byte 60, then system.data. */
  private inlineEntries(dir: Ext4Inode): DirEntryRecord[] {
    const { head, tail } = inlineContent(dir, this.io.name);
    const fail = (problem: string): Error => formatInvalid(this.io.name, `inode ${dir.ino} inline directory`, problem, { ino: dir.ino });
    const parent = head.readUInt32LE(0);
    if (parent === 0 || parent > this.sb.inodesCount) throw fail(`parent inode ${parent} is out of range`);
    const entries = parseDirents(head, INLINE_DIR.PARENT_SIZE, head.length, this.sb, fail);
    return tail.length > 0 ? entries.concat(parseDirents(tail, 0, tail.length, this.sb, fail)) : entries;
  }
}
