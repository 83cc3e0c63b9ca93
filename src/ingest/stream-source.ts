import type { Readable } from 'node:stream';
import { CairnError } from '../core/errors.js';
import type { Extent } from '../core/extent.js';
import type { DiskSource, ExtentPlan } from './disk-source.js';

/** A raw disk image arriving on a stream (stdin): read once, in order; its size is known at its end. */
export class StreamSource implements DiskSource {
  bytesRead = 0;
  readonly size = undefined;

  constructor(
    private readonly stream: Readable,
    readonly description: string,
  ) {}

  async *extents(plan: ExtentPlan): AsyncIterable<Extent> {
    if (plan.changedBlocks) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.description} is a stream: a changed-block bitmap needs a seekable source`);
    }
    let pending: Buffer[] = [];
    let pendingLength = 0;
    let offset = 0;
    const flush = (length: number): Extent => {
      const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLength);
      const data = all.subarray(0, length);
      const rest = all.subarray(length);
      pending = rest.length > 0 ? [rest] : [];
      pendingLength = rest.length;
      const extent: Extent = { offset, length, kind: 'data', data };
      offset += length;
      return extent;
    };
    for await (const piece of this.stream) {
      const buf = Buffer.isBuffer(piece) ? piece : Buffer.from(piece as string);
      this.bytesRead += buf.length;
      pending.push(buf);
      pendingLength += buf.length;
      while (pendingLength >= plan.chunkSize) yield flush(plan.chunkSize);
    }
    if (pendingLength > 0) yield flush(pendingLength);
  }

  async close(): Promise<void> {
    this.stream.destroy();
  }
}
