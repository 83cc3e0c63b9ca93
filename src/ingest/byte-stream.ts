import { CairnError } from '../core/errors.js';

/**
 * Sequential reads from a stream of buffers (stdin, a file read stream): exact reads, a look at the
 * first bytes, and the pieces as they come. Holds at most the bytes one call asked for.
 */
export class ByteStream {
  bytesRead = 0;
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private ended = false;
  private readonly iterator: AsyncIterator<unknown>;

  constructor(
    source: AsyncIterable<unknown>,
    readonly description: string,
    private readonly release?: () => void,
  ) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Releases what the stream reads from (a file), if the stream owns it. */
  close(): void {
    this.release?.();
  }

  /** Position of the next byte a read returns. */
  get position(): number {
    return this.bytesRead - this.pendingLength;
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    const value = next.value;
    const piece = Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array);
    this.bytesRead += piece.length;
    if (piece.length > 0) {
      this.pending.push(piece);
      this.pendingLength += piece.length;
    }
    return true;
  }

  /** Up to `length` first bytes, not consumed (fewer only if the stream is shorter). */
  async peek(length: number): Promise<Buffer> {
    while (this.pendingLength < length && (await this.pull()));
    const all = Buffer.concat(this.pending, this.pendingLength);
    this.pending = all.length > 0 ? [all] : [];
    return all.subarray(0, Math.min(length, all.length));
  }

  /** The next piece of at most `max` bytes as it arrived (no copy), or undefined at the end. */
  async readSome(max: number): Promise<Buffer | undefined> {
    if (this.pendingLength === 0 && !(await this.pull())) return undefined;
    while (this.pendingLength === 0) if (!(await this.pull())) return undefined;
    const first = this.pending[0]!;
    const take = first.subarray(0, Math.min(max, first.length));
    if (take.length === first.length) this.pending.shift();
    else this.pending[0] = first.subarray(take.length);
    this.pendingLength -= take.length;
    return take;
  }

  /** Exactly `length` bytes; a stream that ends first is a clear "truncated" error. */
  async read(length: number, what: string): Promise<Buffer> {
    while (this.pendingLength < length) {
      if (!(await this.pull())) {
        throw new CairnError('ERR_SOURCE', `${this.description} is truncated: it ended at byte ${this.bytesRead} inside ${what}`, {
          offset: this.bytesRead,
        });
      }
    }
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLength);
    const out = all.subarray(0, length);
    const rest = all.subarray(length);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingLength = rest.length;
    return out;
  }

  /** Everything still to come, starting with the bytes already looked at. */
  async *rest(): AsyncGenerator<Buffer> {
    for (;;) {
      const piece = await this.readSome(Number.MAX_SAFE_INTEGER);
      if (piece === undefined) return;
      yield piece;
    }
  }
}
