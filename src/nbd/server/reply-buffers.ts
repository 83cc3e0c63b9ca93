/** Below this a reply buffer comes from Node's shared small-buffer pool; pooling it here buys nothing. */
const MIN_POOLED_BYTES = 64 * 1024;

/**
 * Reply payload buffers reused across requests, in power-of-two size classes. A buffer goes back once
 * the socket has written it (its write callback), so the pool holds at most the server's in-flight
 * budget, and serving a stream of large reads allocates nothing: a fresh 256 KiB buffer per request
 * was garbage that only a major GC reclaims, about 100 MiB of the server's peak under nbdcopy.
 */
export class ReplyBufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;

  /** @param maxFreeBytes idle buffers kept beyond this are dropped */
  constructor(private readonly maxFreeBytes: number) {}

  /** A buffer of exactly `length` bytes (a view of a pooled one); give it back with `give`. */
  take(length: number): Buffer {
    if (length < MIN_POOLED_BYTES) return Buffer.allocUnsafe(length);
    const size = sizeClass(length);
    const pooled = this.free.get(size)?.pop();
    if (pooled) this.freeBytes -= size;
    return (pooled ?? Buffer.allocUnsafeSlow(size)).subarray(0, length);
  }

  give(buffer: Buffer): void {
    if (buffer.length < MIN_POOLED_BYTES) return;
    const whole = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.buffer.byteLength - buffer.byteOffset);
    const size = whole.length;
    if (size !== sizeClass(size) || this.freeBytes + size > this.maxFreeBytes) return;
    const list = this.free.get(size);
    if (list) list.push(whole);
    else this.free.set(size, [whole]);
    this.freeBytes += size;
  }
}

function sizeClass(length: number): number {
  return 2 ** Math.ceil(Math.log2(length));
}
