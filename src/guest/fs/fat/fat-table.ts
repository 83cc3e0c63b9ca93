import type { BlockReader } from '../../../core/block-reader.js';
import { CairnError } from '../../../core/errors.js';
import type { BoundedCache } from '../../../util/bounded-cache.js';
import type { FatGeometry } from './boot-sector.js';
import { FAT_ENTRY, FAT_TYPE_LIMITS } from './layout.js';
import { readVolume } from './volume-bytes.js';

/**
 * Bytes of the FAT read at once. Chains are walked entry by entry, so one large read serves tens of
 * thousands of steps (64 Ki FAT32 entries, 256 MiB of data at 4 KiB clusters) without a round trip
 * to the volume, and a whole FAT16 fits in two pieces.
 */
export const FAT_PIECE_LENGTH = 256 * 1024;

/** What a FAT entry says about the cluster after the one it belongs to ("FAT Data Structure"). */
export type FatLink =
  | { readonly kind: 'next'; readonly cluster: number }
  | { readonly kind: 'end' }
  | { readonly kind: 'free' | 'bad' | 'reserved'; readonly value: number };

/** One FAT piece: the bytes of entries [firstCluster, firstCluster + entries). */
export interface FatPiece {
  readonly firstCluster: number;
  readonly entries: number;
  readonly bytes: Buffer;
}

/** The allocation table of one volume, read in large cached pieces. */
export class FatTable {
  private readonly type: 12 | 16 | 32;
  private readonly entriesPerPiece: number;

  constructor(
    private readonly volume: BlockReader,
    private readonly geometry: FatGeometry,
    private readonly cache: BoundedCache<number, FatPiece>,
    private readonly name: string,
  ) {
    this.type = geometry.fatType;
    // FAT12 entries straddle byte boundaries, so its (small: at most 6 KiB) table is one piece.
    this.entriesPerPiece = this.type === 12 ? geometry.maxCluster + 1 : FAT_PIECE_LENGTH / (this.type / 8);
  }

  /** The piece holding the entry of `cluster` (a cluster number already checked to be in range). */
  piece(cluster: number): Promise<FatPiece> {
    const index = Math.floor(cluster / this.entriesPerPiece);
    return this.cache.get(index, async () => {
      const firstCluster = index * this.entriesPerPiece;
      const entries = Math.min(this.entriesPerPiece, this.geometry.maxCluster + 1 - firstCluster);
      const start = this.type === 12 ? 0 : (firstCluster * this.type) / 8;
      const length = this.type === 12 ? Math.ceil((entries * 3) / 2) : (entries * this.type) / 8;
      const bytes = await readVolume(
        this.volume,
        this.geometry.fatOffset + start,
        length,
        `FAT entries ${firstCluster}..${firstCluster + entries - 1}`,
        this.name,
      );
      return { firstCluster, entries, bytes };
    });
  }

  /** Decodes the entry of `cluster` from its piece (`piece(cluster)`), synchronously. */
  link(piece: FatPiece, cluster: number): FatLink {
    const at = cluster - piece.firstCluster;
    let value: number;
    if (this.type === 12) {
      // "FAT Data Structure": FAT12 entry n is the 16-bit word at byte n + n/2, high 12 bits for odd n.
      const word = piece.bytes.readUInt16LE(at + (at >> 1));
      value = at & 1 ? word >> 4 : word & 0xfff;
    } else if (this.type === 16) {
      value = piece.bytes.readUInt16LE(at * 2);
    } else {
      value = piece.bytes.readUInt32LE(at * 4) & FAT_ENTRY[32].mask;
    }
    return classify(value, this.type, this.geometry.maxCluster);
  }

  /** Whether `cluster` names a data cluster of this volume. */
  inRange(cluster: number): boolean {
    return cluster >= FAT_TYPE_LIMITS.firstDataCluster && cluster <= this.geometry.maxCluster;
  }

  get maxCluster(): number {
    return this.geometry.maxCluster;
  }

  /** An error about the chain of `owner`, for callers that walk chains. */
  damaged(owner: string, what: string, context: Record<string, unknown> = {}): CairnError {
    return new CairnError('ERR_FORMAT_INVALID', `${this.name}: ${owner}: ${what}`, { volume: this.name, ...context });
  }
}

function classify(value: number, type: 12 | 16 | 32, maxCluster: number): FatLink {
  const limits = FAT_ENTRY[type];
  if (value >= limits.endOfChainMin) return { kind: 'end' };
  if (value === limits.bad) return { kind: 'bad', value };
  if (value === 0) return { kind: 'free', value };
  if (value < FAT_TYPE_LIMITS.firstDataCluster || value > maxCluster) return { kind: 'reserved', value };
  return { kind: 'next', cluster: value };
}
