import type { BlockReader } from '../../../core/block-reader.js';
import type { GuestFileExtent } from '../../../core/guest-filesystem.js';
import { BoundedCache } from '../../../util/bounded-cache.js';
import type { BTree, TreeRoot } from './btree.js';
import { checksumMatches } from './checksum.js';
import type { ChunkMap } from './chunk-map.js';
import { decodeExtent, DecodeError } from './compression.js';
import type { CsumTree } from './csum-tree.js';
import { formatInvalid } from './errors.js';
import { fileExtents, type FileExtent } from './file-extents.js';
import type { InodeItem } from './items.js';
import { COMPRESSION_NAMES, FILE_EXTENT, INODE_FLAGS } from './layout.js';
import type { Superblock } from './superblock.js';

/** Volume reads in flight at once for one file read: enough to keep a chunk store busy, bounded. */
const READS_IN_FLIGHT = 4;

/** A regular file (or symlink) to read: its subvolume's tree, objectid and inode item. */
export interface FileRef {
  readonly tree: TreeRoot;
  readonly ino: bigint;
  readonly inode: InodeItem;
}

type Extent = Extract<FileExtent, { kind: 'regular' | 'prealloc' }>;
type Range = { offset: number; length: number };

/**
 * The content of files: walks the file's extent items and reads each piece, checking data
 * checksums from the csum tree unless the inode is nodatasum (a mismatch, or a checksum missing
 * for a checksummed file, is ERR_FORMAT_INVALID naming the inode and extent; a DUP chunk's second
 * copy is tried first). Compressed extents are read whole, checked, decoded and cached by bytes.
 */
export class FileData {
  private readonly decoded: BoundedCache<string, Buffer>;

  constructor(
    private readonly volume: BlockReader,
    private readonly sb: Superblock,
    private readonly chunks: ChunkMap,
    private readonly btree: BTree,
    private readonly csums: CsumTree,
    private readonly name: string,
    cacheBytes: number,
  ) {
    this.decoded = new BoundedCache(cacheBytes, (b) => b.length + 64);
  }

  private extentsOf(file: FileRef, from: number, to: number): AsyncGenerator<FileExtent> {
    return fileExtents(this.btree, file.tree, file.ino, from, to, this.sb.sectorSize, this.name);
  }

  /** Bytes [offset, offset+length) clipped to the size; holes, gaps and prealloc extents read as zeros. */
  async read(file: FileRef, offset: number, length: number): Promise<Buffer> {
    const end = Math.min(offset + length, file.inode.size);
    if (end <= offset) return Buffer.alloc(0);
    const out = Buffer.alloc(end - offset);
    const reads: (() => Promise<void>)[] = [];
    for await (const extent of this.extentsOf(file, offset, end)) {
      const from = Math.max(offset, extent.fileOffset);
      const to = Math.min(end, extent.fileOffset + extent.length);
      if (extent.fileOffset >= end) break;
      if (to <= from) continue;
      const target = out.subarray(from - offset, to - offset);
      if (extent.kind === 'inline') {
        const plain = await this.inlineBytes(file, extent);
        plain.copy(target, 0, from - extent.fileOffset, Math.min(plain.length, to - extent.fileOffset));
      } else if (extent.kind === 'prealloc' || extent.diskBytenr === 0) {
        continue;
      } else if (extent.compression !== FILE_EXTENT.COMPRESS_NONE) {
        const plain = await this.decodedExtent(file, extent);
        const at = extent.extentOffset + (from - extent.fileOffset);
        plain.copy(target, 0, at, at + (to - from));
      } else {
        reads.push(() => this.readPlain(file, extent, from, to, target));
      }
    }
    for (let i = 0; i < reads.length; i += READS_IN_FLIGHT) {
      await Promise.all(reads.slice(i, i + READS_IN_FLIGHT).map((start) => start()));
    }
    return out;
  }

  /**
   * Data and zero pieces of [offset, offset+length) clipped to the size. Uncompressed data carries
   * its volume range (first copy); a compressed extent carries its whole compressed run, but only
   * when the piece is the extent's entire content from its start (otherwise the run alone would
   * not name the bytes), and is never merged with its neighbours. Inline data has no range.
   */
  async extents(file: FileRef, offset: number, length: number): Promise<GuestFileExtent[]> {
    const end = Math.min(offset + length, file.inode.size);
    if (end <= offset) return [];
    const pieces: { offset: number; length: number; kind: 'data' | 'zero'; volumeRanges?: Range[]; sealed?: boolean }[] = [];
    const push = (from: number, to: number, kind: 'data' | 'zero', range?: Range, sealed = false): void => {
      const before = pieces[pieces.length - 1];
      const lastEnd = before ? before.offset + before.length : offset;
      if (from > lastEnd) push(lastEnd, from, 'zero');
      const last = pieces[pieces.length - 1];
      const mergeable = last && !last.sealed && !sealed && last.kind === kind && (kind === 'zero' || (range && last.volumeRanges));
      if (mergeable) {
        last.length += to - from;
        if (range) last.volumeRanges!.push(range);
        return;
      }
      pieces.push({ offset: from, length: to - from, kind, ...(range ? { volumeRanges: [range] } : {}), ...(sealed ? { sealed } : {}) });
    };
    for await (const extent of this.extentsOf(file, offset, end)) {
      if (extent.fileOffset >= end) break;
      const from = Math.max(offset, extent.fileOffset);
      const to = Math.min(end, extent.fileOffset + extent.length);
      if (to <= from) continue;
      if (extent.kind === 'inline') {
        push(from, to, 'data', undefined, true);
      } else if (extent.kind === 'prealloc' || extent.diskBytenr === 0) {
        push(from, to, 'zero');
      } else if (extent.compression !== FILE_EXTENT.COMPRESS_NONE) {
        const whole = from === extent.fileOffset && extent.extentOffset === 0 && extent.length === extent.ramBytes;
        const where = `${file.tree.what} inode ${file.ino} extent at ${extent.fileOffset}`;
        const run = whole
          ? { offset: this.chunks.map(extent.diskBytenr, extent.diskNumBytes, where)[0]!, length: extent.diskNumBytes }
          : undefined;
        push(from, to, 'data', run, true);
      } else {
        const where = `${file.tree.what} inode ${file.ino} extent at ${extent.fileOffset}`;
        const logical = extent.diskBytenr + extent.extentOffset + (from - extent.fileOffset);
        push(from, to, 'data', { offset: this.chunks.map(logical, to - from, where)[0]!, length: to - from });
      }
    }
    const last = pieces[pieces.length - 1];
    const lastEnd = last ? last.offset + last.length : offset;
    if (lastEnd < end) push(lastEnd, end, 'zero');
    return pieces.map(({ sealed: _sealed, ...piece }) => piece);
  }

  private verifies(file: FileRef): boolean {
    return (file.inode.flags & INODE_FLAGS.NODATASUM) === 0;
  }

  private async inlineBytes(file: FileRef, extent: Extract<FileExtent, { kind: 'inline' }>): Promise<Buffer> {
    if (extent.compression === FILE_EXTENT.COMPRESS_NONE) return extent.data;
    return this.decode(file, extent.fileOffset, extent.compression, extent.data, extent.length);
  }

  private async decode(file: FileRef, fileOffset: number, compression: number, input: Buffer, ramBytes: number): Promise<Buffer> {
    try {
      return await decodeExtent(compression, input, ramBytes, this.sb.sectorSize);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      const codec = COMPRESSION_NAMES[compression as keyof typeof COMPRESSION_NAMES];
      throw formatInvalid(
        this.name,
        `${file.tree.what} inode ${file.ino} extent at ${fileOffset}`,
        `${codec} data does not decode: ${err.message}`,
      );
    }
  }

  private decodedExtent(file: FileRef, extent: Extent): Promise<Buffer> {
    const verify = this.verifies(file);
    const cacheKey = `${extent.diskBytenr}:${extent.diskNumBytes}:${extent.compression}:${extent.ramBytes}:${verify ? 1 : 0}`;
    return this.decoded.get(cacheKey, async () => {
      const stored = await this.readChecked(file, extent, extent.diskBytenr, extent.diskNumBytes, verify);
      return this.decode(file, extent.fileOffset, extent.compression, stored, extent.ramBytes);
    });
  }

  /** An uncompressed piece: the sectors around file bytes [from, to), checked, copied into `target`. */
  private async readPlain(file: FileRef, extent: Extent, from: number, to: number, target: Buffer): Promise<void> {
    const ss = this.sb.sectorSize;
    const logical = extent.diskBytenr + extent.extentOffset + (from - extent.fileOffset);
    const start = Math.floor(logical / ss) * ss;
    const stop = Math.ceil((logical + (to - from)) / ss) * ss;
    const bytes = await this.readChecked(file, extent, start, stop - start, this.verifies(file));
    bytes.copy(target, 0, logical - start, logical - start + (to - from));
  }

  /** Logical [logical, logical+length) of one extent, each sector checked when `verify`, trying every copy. */
  private async readChecked(file: FileRef, extent: Extent, logical: number, length: number, verify: boolean): Promise<Buffer> {
    const where = `${file.tree.what} inode ${file.ino} extent at ${extent.fileOffset}`;
    const copies = this.chunks.map(logical, length, `${where} (disk bytes ${extent.diskBytenr}+${extent.diskNumBytes})`);
    const sums = verify ? await this.csums.lookup(logical, length) : undefined;
    const ss = this.sb.sectorSize;
    if (sums) {
      const missing = sums.present.indexOf(0);
      if (missing >= 0) {
        throw formatInvalid(this.name, where, `no data checksum for logical sector ${logical + missing * ss} (a csum hole)`, {
          ino: String(file.ino),
        });
      }
    }
    let bad = -1;
    for (const physical of copies) {
      const bytes = await this.volume.read(physical, length);
      if (!sums) return bytes;
      bad = -1;
      for (let i = 0; i < length / ss && bad < 0; i++) {
        if (!checksumMatches(this.sb.csum, bytes, i * ss, (i + 1) * ss, sums.sums, i * this.sb.csum.size)) bad = i;
      }
      if (bad < 0) return bytes;
    }
    throw formatInvalid(
      this.name,
      where,
      `data checksum mismatch at logical ${logical + bad * ss} (file offset ~${extent.fileOffset + Math.max(0, logical + bad * ss - extent.diskBytenr - extent.extentOffset)}, ${copies.length} cop${copies.length > 1 ? 'ies' : 'y'} tried)`,
      { ino: String(file.ino), logical: logical + bad * ss },
    );
  }
}
