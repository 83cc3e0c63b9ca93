import type { BlockReader } from '../../../core/block-reader.js';
import type { BoundedCache } from '../../../util/bounded-cache.js';
import { clusterOffset, type FatGeometry } from './boot-sector.js';
import type { ClusterRuns } from './cluster-chain.js';
import { FAT_TYPE_LIMITS } from './layout.js';
import { readVolume } from './volume-bytes.js';

/**
 * Directory bytes are read and cached in pieces of about this size: a group of consecutive clusters
 * (cluster numbers g·n .. g·n+n−1), or a slice of the FAT12/16 root region. Directories are usually
 * allocated contiguously, so one read serves many clusters, and `stat` of an entry finds its piece
 * from the entry's offset alone.
 */
export const DIRECTORY_PIECE_LENGTH = 64 * 1024;

/** Where a directory's entries are: the fixed FAT12/16 root region, or a cluster chain. */
export type DirectoryLocation = { readonly region: { readonly offset: number; readonly length: number } } | { readonly runs: ClusterRuns };

/** One stretch of directory bytes and its offset on the volume. */
export interface DirectoryBlock {
  readonly offset: number;
  readonly bytes: Buffer;
}

export class DirectoryBlocks {
  private readonly clustersPerPiece: number;

  constructor(
    private readonly volume: BlockReader,
    private readonly geometry: FatGeometry,
    private readonly cache: BoundedCache<number, DirectoryBlock>,
    private readonly name: string,
  ) {
    this.clustersPerPiece = Math.max(1, Math.floor(DIRECTORY_PIECE_LENGTH / geometry.clusterSize));
  }

  /** The cached piece holding volume byte `offset`, which lies in the root region or a data cluster. */
  pieceAt(offset: number): Promise<DirectoryBlock> {
    const g = this.geometry;
    let start: number;
    let length: number;
    if (offset < g.dataOffset) {
      const index = Math.floor((offset - g.rootDirOffset) / DIRECTORY_PIECE_LENGTH);
      start = g.rootDirOffset + index * DIRECTORY_PIECE_LENGTH;
      length = Math.min(DIRECTORY_PIECE_LENGTH, g.rootDirOffset + g.rootDirLength - start);
    } else {
      const cluster = FAT_TYPE_LIMITS.firstDataCluster + Math.floor((offset - g.dataOffset) / g.clusterSize);
      const first = Math.max(FAT_TYPE_LIMITS.firstDataCluster, cluster - (cluster % this.clustersPerPiece));
      const last = Math.min(g.maxCluster, first + this.clustersPerPiece - 1);
      start = clusterOffset(g, first);
      // Clusters of the group past the end of a cut-short volume are left out of the piece (`covering`
      // rejects them); the cluster asked for must be on the volume.
      const whole = g.dataOffset + Math.floor((this.volume.size - g.dataOffset) / g.clusterSize) * g.clusterSize;
      const end = Math.min(clusterOffset(g, last + 1), Math.max(whole, clusterOffset(g, cluster + 1)));
      length = end - start;
    }
    return this.cache.get(start, async () => ({
      offset: start,
      bytes: await readVolume(this.volume, start, length, 'directory data', this.name),
    }));
  }

  /** The `length` directory bytes at volume offset `offset`, from the cached piece that holds them. */
  async covering(offset: number, length: number): Promise<Buffer> {
    const piece = await this.pieceAt(offset);
    const at = offset - piece.offset;
    if (at < 0 || at + length > piece.bytes.length) {
      // Only a cut-short volume leaves a piece short of a cluster it should hold: read (and fail) as such.
      return readVolume(this.volume, offset, length, 'directory data', this.name);
    }
    return piece.bytes.subarray(at, at + length);
  }

  /** The directory's bytes in order, a cluster (or a root-region piece) at a time. */
  async *blocks(location: DirectoryLocation): AsyncGenerator<DirectoryBlock> {
    if ('region' in location) {
      for (let at = location.region.offset; at < location.region.offset + location.region.length; at += DIRECTORY_PIECE_LENGTH) {
        yield await this.pieceAt(at);
      }
      return;
    }
    const { runs } = location;
    const size = this.geometry.clusterSize;
    let piece: DirectoryBlock | undefined;
    for (let r = 0; r < runs.runCount; r++) {
      const first = runs.starts[r] ?? 0;
      const count = runs.counts[r] ?? 0;
      for (let cluster = first; cluster < first + count; cluster++) {
        const offset = clusterOffset(this.geometry, cluster);
        // Consecutive clusters usually share a piece: reuse it without going back to the cache.
        if (!piece || offset < piece.offset || offset + size > piece.offset + piece.bytes.length) {
          piece = await this.pieceAt(offset);
          if (offset + size > piece.offset + piece.bytes.length) {
            yield { offset, bytes: await this.covering(offset, size) };
            piece = undefined;
            continue;
          }
        }
        const at = offset - piece.offset;
        yield { offset, bytes: piece.bytes.subarray(at, at + size) };
      }
    }
  }
}
