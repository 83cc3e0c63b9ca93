import type { Socket } from 'node:net';

/**
 * Writes whole replies to a socket. Each `send` puts all its buffers on the wire back to back (replies
 * of concurrent requests never interleave inside a chunk) and resolves once the socket has accepted
 * them, waiting for 'drain' under back-pressure. After the socket closes, sends are dropped.
 *
 * Replies finished in the same event-loop turn leave in one writev: the socket stays corked until
 * setImmediate. Small cached reads otherwise cost one system call each (the profile's top entry).
 */
export class ReplyWriter {
  private drainWaiters: (() => void)[] = [];
  /** One timer for all waiting sends: armed by the first wait after a drain, cleared by the next drain. */
  private stallTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private corked = false;

  /**
   * @param stallTimeoutMs a client that leaves replies unread this long while we wait to write is
   *   dropped: it would otherwise pin its share of the server's in-flight budget forever.
   */
  constructor(
    private readonly socket: Socket,
    private readonly stallTimeoutMs = 60_000,
    private readonly onStall: () => void = () => undefined,
  ) {
    socket.on('drain', () => this.wakeAll());
    socket.on('close', () => {
      this.closed = true;
      this.wakeAll();
    });
  }

  get isClosed(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /** Reply bytes the socket holds that the kernel has not taken yet. */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  /**
   * @param onWritten called once the socket no longer needs the buffers (written to the kernel, or
   *   dropped because the socket closed), so their memory may be reused.
   */
  async send(buffers: readonly Buffer[], onWritten?: () => void): Promise<void> {
    if (this.isClosed) {
      onWritten?.();
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => this.flush());
    }
    let ok = true;
    const lastIndex = buffers.length - 1;
    // A stream calls write callbacks in order, so the last one's callback means all were written.
    buffers.forEach((buf, i) => {
      ok = (i === lastIndex && onWritten ? this.socket.write(buf, () => onWritten()) : this.socket.write(buf)) && ok;
    });
    if (lastIndex < 0) onWritten?.();
    if (ok) return;
    await new Promise<void>((resolve) => {
      if (this.isClosed) return resolve();
      this.drainWaiters.push(resolve);
      this.stallTimer ??= this.armStallTimer();
    });
  }

  private armStallTimer(): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.stallTimer = undefined;
      if (this.isClosed || !this.socket.writableNeedDrain) return this.wakeAll();
      this.onStall();
      this.socket.destroy();
    }, this.stallTimeoutMs);
    timer.unref();
    return timer;
  }

  private flush(): void {
    this.corked = false;
    if (!this.socket.destroyed) this.socket.uncork();
    // A corked socket may report back-pressure without ever emitting 'drain' once nothing is buffered.
    if (!this.socket.writableNeedDrain) this.wakeAll();
  }

  private wakeAll(): void {
    if (this.stallTimer) {
      clearTimeout(this.stallTimer);
      this.stallTimer = undefined;
    }
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const wake of waiters) wake();
  }
}
