import type { AllocationExtent } from './extent.js';

/**
 * A random-access, read-only disk. The NBD server and the FUSE tree serve this; they never see where
 * the bytes come from. Reads past `size` are the caller's error (ERR_OUT_OF_RANGE).
 */
export interface BlockReader {
  /** Size of the disk in bytes. */
  readonly size: number;
  /** Natural granularity of the backing storage (the chunk size); a hint for clients. */
  readonly blockSize: number;
  /** Reads `length` bytes at `offset`; damaged data rejects with ERR_CHUNK_CORRUPT naming the chunk. */
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Reads `length` bytes at `offset` into `target` (every byte written), where a reader can do it
   * without a buffer of its own: one copy from its chunk cache into, say, libfuse's reply buffer.
   */
  readInto?(offset: number, length: number, target: Buffer): Promise<void>;
  /** Describes [offset, offset+length) as contiguous extents that hold data or read as zeros. */
  allocation(offset: number, length: number): Promise<AllocationExtent[]>;
  /**
   * Names the stored content of [offset, offset+length) without reading it (the chunk digests that
   * cover it and the range's place in them): equal keys mean equal bytes, within one repository.
   * Undefined where a reader cannot tell cheaply. `cairn versions` compares file versions with it.
   */
  contentKey?(offset: number, length: number): Promise<string | undefined>;
}

/** A range of a disk marked as changed (or not) relative to another restore point of the same disk. */
export interface ChangeExtent {
  offset: number;
  length: number;
  changed: boolean;
}

/** Answers which blocks differ between two restore points of one disk. */
export interface ChangeMap {
  readonly blockSize: number;
  changes(offset: number, length: number): Promise<ChangeExtent[]>;
}
