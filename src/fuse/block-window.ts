import type { BlockReader } from '../core/block-reader.js';

/** Zeros shared by every window: a hole is answered from here, never from a fresh zero-filled block. */
let sharedZeros = Buffer.alloc(0);

function zeros(length: number): Buffer {
  if (sharedZeros.length < length) sharedZeros = Buffer.alloc(length);
  return sharedZeros.subarray(0, length);
}

/** True when the reader says [offset, end) reads as zeros (an index hole); unknown counts as data. */
export async function isHole(reader: BlockReader, offset: number, end: number): Promise<boolean> {
  const extents = await reader.allocation(offset, end - offset);
  let covered = offset;
  for (const extent of extents) {
    if (!extent.zero || extent.offset > covered) return false;
    covered = Math.max(covered, extent.offset + extent.length);
  }
  return covered >= end;
}

/**
 * Keeps the last block an open file read (one chunk, from the shared cache) so the kernel's 128 KiB
 * requests that follow inside it are answered at once, without another trip through the reader.
 * Holds at most one block per open file. A hole is recognised from the index and answered from
 * shared zeros: reading it through the reader would zero-fill a new block each time.
 */
export class BlockWindow {
  private start = -1;
  private data: Buffer | undefined;
  private readonly blockSize: number;

  constructor(private readonly reader: BlockReader) {
    this.blockSize = Math.max(4096, reader.blockSize);
  }

  /** The bytes when [offset, offset+length) lies in the held block, else undefined. */
  peek(offset: number, length: number): Buffer | undefined {
    if (this.data === undefined || offset < this.start || offset + length > this.start + this.data.length) return undefined;
    return this.data.subarray(offset - this.start, offset - this.start + length);
  }

  /** Reads the range, loading the whole block around it when the range fits in one block. */
  async read(offset: number, length: number): Promise<Buffer> {
    const start = Math.floor(offset / this.blockSize) * this.blockSize;
    const end = Math.min(this.reader.size, start + this.blockSize);
    if (offset + length > end) return this.reader.read(offset, length);
    const data = (await isHole(this.reader, start, end)) ? zeros(end - start) : await this.reader.read(start, end - start);
    this.start = start;
    this.data = data;
    return data.subarray(offset - start, offset - start + length);
  }
}
