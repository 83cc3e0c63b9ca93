import type { Duplex } from 'node:stream';
import { CairnError } from '../../core/errors.js';

interface Waiter {
  length: number;
  /** Discard instead of collecting (large unwanted payloads). */
  discard: boolean;
  resolve: (buf: Buffer) => void;
  reject: (err: Error) => void;
}

export interface ByteQueueOptions {
  /** Bytes buffered beyond what the pending read needs before `onPause` is called. */
  highWaterMark?: number;
  onPause?: () => void;
  onResume?: () => void;
}

/**
 * Turns a byte stream into exact-length reads, the framing both NBD ends need: `read(n)` resolves
 * with exactly n bytes, or rejects with ERR_NBD_PROTOCOL when the stream ends first. One reader at a
 * time. Flow control pauses the source while more than the high-water mark sits unread.
 */
export class NbdByteQueue {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: Waiter | undefined;
  private endError: Error | undefined;
  private ended = false;
  private paused = false;
  private readonly highWaterMark: number;

  constructor(private readonly options: ByteQueueOptions = {}) {
    this.highWaterMark = options.highWaterMark ?? 1024 * 1024;
  }

  /** Wires a socket: data in, end/error close the queue, pausing follows the high-water mark. */
  static fromStream(stream: Duplex, highWaterMark?: number): NbdByteQueue {
    const queue = new NbdByteQueue({
      highWaterMark,
      onPause: () => stream.pause(),
      onResume: () => stream.resume(),
    });
    stream.on('data', (chunk: Buffer) => queue.push(chunk));
    stream.on('end', () => queue.end());
    stream.on('close', () => queue.end());
    stream.on('error', (err: Error) => queue.end(err));
    return queue;
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  push(chunk: Buffer): void {
    if (this.ended || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.serve();
    this.flow();
  }

  /** No more bytes will come; a pending or later read that cannot be satisfied rejects. */
  end(err?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = err;
    this.serve();
  }

  read(length: number): Promise<Buffer> {
    return this.enqueue(length, false);
  }

  /** Consumes and drops `length` bytes without holding them all in memory. */
  async skip(length: number): Promise<void> {
    await this.enqueue(length, true);
  }

  private enqueue(length: number, discard: boolean): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new Error('NbdByteQueue: concurrent reads are not supported'));
    if (!Number.isSafeInteger(length) || length < 0) {
      return Promise.reject(new CairnError('ERR_INVALID_ARGUMENT', `invalid read length ${length}`, { length }));
    }
    return new Promise<Buffer>((resolve, reject) => {
      this.waiter = { length, discard, resolve, reject };
      this.serve();
      this.flow();
    });
  }

  private serve(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    if (waiter.discard) {
      // Drop whole chunks as they come so a large unwanted payload never accumulates.
      while (waiter.length > 0 && this.chunks.length > 0) {
        const head = this.chunks[0]!;
        const take = Math.min(head.length, waiter.length);
        this.consumeFront(take);
        waiter.length -= take;
      }
      if (waiter.length === 0) {
        this.waiter = undefined;
        waiter.resolve(Buffer.alloc(0));
        return;
      }
    } else if (this.buffered >= waiter.length) {
      this.waiter = undefined;
      waiter.resolve(this.take(waiter.length));
      return;
    }
    if (this.ended) {
      this.waiter = undefined;
      const got = waiter.discard ? 0 : this.buffered;
      waiter.reject(
        new CairnError(
          'ERR_NBD_PROTOCOL',
          got === 0 && !waiter.discard ? 'NBD connection closed' : `NBD connection closed in the middle of a message`,
          { wanted: waiter.length, got, truncated: got > 0 || waiter.discard },
          { cause: this.endError },
        ),
      );
    }
  }

  private take(length: number): Buffer {
    if (length === 0) return Buffer.alloc(0);
    const head = this.chunks[0]!;
    if (head.length >= length) {
      const out = head.subarray(0, length);
      this.consumeFront(length);
      return out;
    }
    const out = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const chunk = this.chunks[0]!;
      const n = Math.min(chunk.length, length - filled);
      chunk.copy(out, filled, 0, n);
      filled += n;
      this.consumeFront(n);
    }
    return out;
  }

  private consumeFront(n: number): void {
    const head = this.chunks[0]!;
    if (n === head.length) this.chunks.shift();
    else this.chunks[0] = head.subarray(n);
    this.buffered -= n;
  }

  private flow(): void {
    const need = this.waiter && !this.waiter.discard ? this.waiter.length : 0;
    const limit = Math.max(this.highWaterMark, need);
    if (!this.paused && this.buffered > limit) {
      this.paused = true;
      this.options.onPause?.();
    } else if (this.paused && (this.buffered <= limit || this.waiter)) {
      this.paused = false;
      this.options.onResume?.();
    }
  }
}
