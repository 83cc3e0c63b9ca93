import type { DiskOrigin } from '../store/manifest.js';
import { ImageFile } from './image-file.js';

/** Reads bytes [skip, skip + length) of a data piece into `target` at `targetOffset`. */
export type PieceReader = (target: Buffer, targetOffset: number, skip: number, length: number) => Promise<void>;
/** Bytes [skip, skip + length) of a data piece as a buffer of their own: no copy where the layer decoded them already. */
export type PieceLoader = (skip: number, length: number) => Promise<Buffer>;

/**
 * How a range of one image layer reads:
 * - `data`: bytes stored in this layer (`read` fetches them);
 * - `zero`: reads as zeros here (a zero cluster, an unallocated range with nothing below);
 * - `parent`: not in this layer: the layer below (backing file, parent VHD) or the base point has it.
 */
export type LayerPiece =
  | { kind: 'zero' | 'parent'; offset: number; length: number }
  | { kind: 'data'; offset: number; length: number; read: PieceReader; load?: PieceLoader };

/**
 * One image of a chain (a qcow2 with its backing file, a differencing VHD with its parent, or a raw
 * file at the bottom). `map` is called with ranges in increasing offset order, so a layer may keep
 * only the tables of the current region.
 */
export interface ImageLayer {
  readonly description: string;
  readonly path: string;
  /** Virtual size in bytes. */
  readonly size: number;
  /** What the point records of this image when it is the top of the chain. */
  readonly origin?: DiskOrigin;
  /** Refuses a base point whose disk was recorded from another image than this one's parent (where the format can tell). */
  checkBase?(base: { point: string; origin?: DiskOrigin } | undefined): void;
  /** Whether `map` may answer `parent` pieces. */
  readonly hasParent: boolean;
  /** Pieces covering [offset, offset + length) in order, without gaps. */
  map(offset: number, length: number): Promise<LayerPiece[]>;
  /** The layer below, opened on the first call (only a flattening read needs it). */
  openParent(): Promise<ImageLayer>;
  /** Bytes read from this layer's file and every layer below it that was opened. */
  readonly bytesRead: number;
  close(): Promise<void>;
}

/** What a layer knows of the chain above it: files already open (a loop), its depth, how to open the next. */
export interface ChainContext {
  readonly seen: ReadonlySet<string>;
  readonly depth: number;
  openBacking(childPath: string, name: string, format: string | undefined, chain: ChainContext): Promise<ImageLayer>;
}

/** A raw image at the bottom of a chain (a qcow2 whose backing file is raw). */
export class RawLayer implements ImageLayer {
  readonly hasParent = false;

  constructor(private readonly file: ImageFile) {}

  get description(): string {
    return `raw ${this.file.path}`;
  }

  get path(): string {
    return this.file.path;
  }

  get size(): number {
    return this.file.size;
  }

  get bytesRead(): number {
    return this.file.bytesRead;
  }

  async map(offset: number, length: number): Promise<LayerPiece[]> {
    return [
      {
        kind: 'data',
        offset,
        length,
        read: (target, targetOffset, skip, count) => this.file.readInto(target, targetOffset, offset + skip, count, 'raw data'),
      },
    ];
  }

  openParent(): Promise<ImageLayer> {
    throw new Error('a raw layer has no parent');
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
