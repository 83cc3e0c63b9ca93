/**
 * Where a socket puts the bytes it reads (net's `onread`): the kernel copies them straight into the
 * buffer `nextBuffer()` returned, and `onRead` is told how many arrived. No Buffer is allocated per
 * read, and a READ payload lands in its destination without passing through a queue.
 */
export interface SocketReadTarget {
  nextBuffer(): Buffer;
  /** `length` bytes arrived at the start of `buffer` (the one `nextBuffer()` returned last). */
  onRead(length: number, buffer: Buffer): void;
}

/**
 * Reads a byte stream one field at a time: the parser says where the next field goes (`expect`) and
 * what to do once it is complete. Large fields (READ payloads) are read by the kernel in place;
 * headers are read through a small scratch buffer, sized so that one read usually brings a whole
 * structured reply header with its data offset and stops there, at the payload.
 */
export class FieldReader implements SocketReadTarget {
  private target: Buffer = Buffer.alloc(0);
  private at = 0;
  private end = 0;
  private then: () => void = () => undefined;
  private readonly scratch: Buffer;
  /** The region handed out by nextBuffer() when it was the target itself (bytes arrive in place). */
  private direct: Buffer | undefined;
  private stopped = false;
  private fieldStart = 0;

  /**
   * @param headerRead bytes to ask for while a header is expected (a header and what directly follows it)
   * @param directMin fields at least this long are read in place; shorter ones through the scratch
   */
  constructor(
    private readonly onError: (err: unknown) => void,
    private readonly onBytes: () => void,
    private readonly headerRead: number,
    private readonly directMin = 512,
  ) {
    this.scratch = Buffer.allocUnsafe(Math.max(headerRead, directMin));
  }

  /** The next `end - start` bytes go to `target[start, end)`; `then` runs once they are all there. */
  expect(target: Buffer, start: number, end: number, then: () => void): void {
    this.target = target;
    this.fieldStart = start;
    this.at = start;
    this.end = end;
    this.then = then;
    if (start === end) this.complete();
  }

  /** True when no byte of the expected field has arrived yet. */
  get fieldEmpty(): boolean {
    return this.at === this.fieldStart;
  }

  /** Drops everything from now on (the connection failed). */
  stop(): void {
    this.stopped = true;
  }

  nextBuffer(): Buffer {
    const remaining = this.end - this.at;
    if (!this.stopped && remaining >= this.directMin) {
      this.direct = this.target.subarray(this.at, this.end);
      return this.direct;
    }
    this.direct = undefined;
    return this.scratch.subarray(0, Math.max(remaining, this.headerRead));
  }

  onRead(length: number, buffer: Buffer): void {
    if (this.stopped) return;
    this.onBytes();
    try {
      if (buffer === this.direct) {
        this.direct = undefined;
        this.at += length;
        if (this.at === this.end) this.complete();
      } else {
        this.consume(buffer, 0, length);
      }
    } catch (err) {
      this.stopped = true;
      this.onError(err);
    }
  }

  /** Feeds bytes that arrived elsewhere (copied into the fields); also the path for non-onread streams. */
  consume(source: Buffer, from = 0, to = source.length): void {
    while (from < to && !this.stopped) {
      const take = Math.min(to - from, this.end - this.at);
      if (take === 0) throw new Error('FieldReader: bytes arrived while no field was expected');
      source.copy(this.target, this.at, from, from + take);
      this.at += take;
      from += take;
      if (this.at === this.end) this.complete();
    }
  }

  private complete(): void {
    const then = this.then;
    // `then` sets the next expectation; until it does, nothing is expected.
    this.then = () => undefined;
    then();
  }
}
