import { BoundedCache } from '../../../util/bounded-cache.js';
import { RunList, type BlockRun } from './block-run.js';
import { formatInvalid } from './errors.js';
import type { Ext4Inode } from './inode.js';
import { BLOCK_MAP } from './layout.js';
import type { Superblock } from './superblock.js';
import type { VolumeIO } from './volume-io.js';

/**
 * Maps logical blocks through the ext2/ext3 block map (blockmap.rst): twelve direct pointers, then
 * single, double and triple indirect blocks of 32-bit pointers, 0 meaning a hole. A zero pointer
 * at any level skips its whole subtree, so the work is bounded by the blocks actually mapped; an
 * indirect block met twice in one call is refused (a loop or shared subtree in a hostile image).
 */
export class BlockMap {
  private readonly pointers: BoundedCache<number, Uint32Array>;
  private readonly perBlock: number;

  constructor(
    private readonly io: VolumeIO,
    private readonly sb: Superblock,
    cacheBytes: number,
  ) {
    this.pointers = new BoundedCache(cacheBytes, (p) => p.byteLength + 64);
    this.perBlock = sb.blockSize / 4;
  }

  async map(inode: Ext4Inode, first: number, end: number): Promise<BlockRun[]> {
    const runs = new RunList(first, end);
    const seen = new Set<number>();
    const direct = new Uint32Array(BLOCK_MAP.DIRECT);
    for (let i = 0; i < BLOCK_MAP.DIRECT; i++) direct[i] = inode.iBlock.readUInt32LE(i * 4);
    await this.walk(inode, direct, 0, 0, runs, seen);
    let base = BLOCK_MAP.DIRECT;
    let span = this.perBlock;
    for (const slot of [BLOCK_MAP.IND, BLOCK_MAP.DIND, BLOCK_MAP.TIND]) {
      if (runs.done || base >= end) break;
      const pointer = inode.iBlock.readUInt32LE(slot * 4);
      if (pointer !== 0 && base + span > runs.position) {
        const level = slot - BLOCK_MAP.IND;
        const child = await this.readIndirect(inode, pointer, seen);
        await this.walk(inode, child, base, level, runs, seen);
      }
      base += span;
      span *= this.perBlock;
    }
    return runs.finish();
  }

  /** Walks `list`, whose entries each cover perBlock^level blocks from `base`. */
  private async walk(inode: Ext4Inode, list: Uint32Array, base: number, level: number, runs: RunList, seen: Set<number>): Promise<void> {
    const span = this.perBlock ** level;
    const startIndex = Math.max(0, Math.floor((runs.position - base) / span));
    for (let i = startIndex; i < list.length && !runs.done; i++) {
      const logical = base + i * span;
      if (logical >= runs.limit) break;
      const pointer = list[i]!;
      if (pointer === 0) continue;
      if (level === 0) {
        this.checkData(inode, pointer);
        runs.add(logical, 1, pointer, false);
      } else {
        const child = await this.readIndirect(inode, pointer, seen);
        await this.walk(inode, child, logical, level - 1, runs, seen);
      }
    }
  }

  private checkData(inode: Ext4Inode, pointer: number): void {
    if (pointer <= this.sb.firstDataBlock || pointer >= this.sb.blocksCount) {
      throw formatInvalid(this.io.name, `inode ${inode.ino} block map`, `points at block ${pointer}, outside the filesystem`, {
        ino: inode.ino,
        block: pointer,
      });
    }
  }

  private readIndirect(inode: Ext4Inode, block: number, seen: Set<number>): Promise<Uint32Array> {
    this.checkData(inode, block);
    if (seen.has(block)) {
      return Promise.reject(
        formatInvalid(this.io.name, `inode ${inode.ino} block map`, `indirect block ${block} is referenced twice`, {
          ino: inode.ino,
          block,
        }),
      );
    }
    seen.add(block);
    return this.pointers.get(block, async () => {
      const bytes = await this.io.readBlocks(block, 1, `inode ${inode.ino} indirect block ${block}`);
      const list = new Uint32Array(this.perBlock);
      for (let i = 0; i < this.perBlock; i++) list[i] = bytes.readUInt32LE(i * 4);
      return list;
    });
  }
}
