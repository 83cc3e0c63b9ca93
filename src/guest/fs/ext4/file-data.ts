import type { GuestFileExtent } from '../../../core/guest-filesystem.js';
import type { BlockRun } from './block-run.js';
import type { BlockMap } from './block-map.js';
import type { ExtentTree } from './extent-tree.js';
import { inlineContent } from './inline-data.js';
import type { Ext4Inode } from './inode.js';
import { INODE_FLAGS } from './layout.js';
import type { VolumeIO } from './volume-io.js';

/** Volume reads in flight at once for one file read: enough to keep a chunk store busy, bounded. */
const READS_IN_FLIGHT = 4;

/**
 * The content of regular files, directories and slow symlinks: maps byte ranges through the extent
 * tree or block map (or inline data) and turns each contiguous run into one volume read.
 */
export class FileData {
  constructor(
    private readonly io: VolumeIO,
    private readonly extentTree: ExtentTree,
    private readonly blockMap: BlockMap,
  ) {}

  /** Runs covering logical blocks [first, end) of the inode, holes included. */
  map(inode: Ext4Inode, first: number, end: number): Promise<BlockRun[]> {
    return inode.flags & INODE_FLAGS.EXTENTS ? this.extentTree.map(inode, first, end) : this.blockMap.map(inode, first, end);
  }

  /** Bytes [offset, offset+length) clipped to the inode's size; holes and unwritten runs read as zeros. */
  async read(inode: Ext4Inode, offset: number, length: number): Promise<Buffer> {
    const end = Math.min(offset + length, inode.size);
    if (end <= offset) return Buffer.alloc(0);
    const out = Buffer.allocUnsafe(end - offset);
    if (inode.flags & INODE_FLAGS.INLINE_DATA) {
      const { head, tail } = inlineContent(inode, this.io.name);
      out.fill(0);
      copyPart(head, 0, out, offset);
      copyPart(tail, head.length, out, offset);
      return out;
    }
    const bs = this.io.blockSize;
    const runs = await this.map(inode, Math.floor(offset / bs), Math.ceil(end / bs));
    const reads: (() => Promise<void>)[] = [];
    for (const run of runs) {
      const from = Math.max(run.logical * bs, offset);
      const to = Math.min((run.logical + run.count) * bs, end);
      if (to <= from) continue;
      const target = out.subarray(from - offset, to - offset);
      if (run.physical < 0 || run.unwritten) {
        target.fill(0);
        continue;
      }
      const volumeOffset = run.physical * bs + (from - run.logical * bs);
      reads.push(() => this.io.readInto(volumeOffset, to - from, target));
    }
    for (let i = 0; i < reads.length; i += READS_IN_FLIGHT) {
      await Promise.all(reads.slice(i, i + READS_IN_FLIGHT).map((start) => start()));
    }
    return out;
  }

  /** Data and zero pieces of [offset, offset+length) clipped to the size, with the volume ranges of data. */
  async extents(inode: Ext4Inode, offset: number, length: number): Promise<GuestFileExtent[]> {
    const end = Math.min(offset + length, inode.size);
    if (end <= offset) return [];
    if (inode.flags & INODE_FLAGS.INLINE_DATA) return [{ offset, length: end - offset, kind: 'data' }];
    const bs = this.io.blockSize;
    const runs = await this.map(inode, Math.floor(offset / bs), Math.ceil(end / bs));
    const pieces: { offset: number; length: number; kind: 'data' | 'zero'; volumeRanges?: { offset: number; length: number }[] }[] = [];
    for (const run of runs) {
      const from = Math.max(run.logical * bs, offset);
      const to = Math.min((run.logical + run.count) * bs, end);
      if (to <= from) continue;
      const kind = run.physical < 0 || run.unwritten ? 'zero' : 'data';
      const last = pieces[pieces.length - 1];
      const range = kind === 'data' ? { offset: run.physical * bs + (from - run.logical * bs), length: to - from } : undefined;
      if (last && last.kind === kind && last.offset + last.length === from) {
        last.length += to - from;
        if (range) last.volumeRanges!.push(range);
      } else {
        pieces.push(range ? { offset: from, length: to - from, kind, volumeRanges: [range] } : { offset: from, length: to - from, kind });
      }
    }
    return pieces;
  }
}

/** Copies `part` (which starts at file offset `partStart`) into `out` (which starts at file offset `outStart`). */
function copyPart(part: Buffer, partStart: number, out: Buffer, outStart: number): void {
  const from = Math.max(partStart, outStart);
  const to = Math.min(partStart + part.length, outStart + out.length);
  if (to > from) part.copy(out, from - outStart, from - partStart, to - partStart);
}
