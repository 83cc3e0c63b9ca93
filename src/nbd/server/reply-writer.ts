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
  private closed = false;
  private corked = false;

  constructor(private readonly socket: Socket) {
    socket.on('drain', () => this.wakeAll());
    socket.on('close', () => {
      this.closed = true;
      this.wakeAll();
    });
  }

  get isClosed(): boolean {
    return this.closed || this.socket.destroyed;
  }

  async send(buffers: readonly Buffer[]): Promise<void> {
    if (this.isClosed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => this.flush());
    }
    let ok = true;
    for (const buf of buffers) ok = this.socket.write(buf) && ok;
    if (ok) return;
    await new Promise<void>((resolve) => {
      if (this.isClosed) resolve();
      else this.drainWaiters.push(resolve);
    });
  }

  private flush(): void {
    this.corked = false;
    if (!this.socket.destroyed) this.socket.uncork();
    // A corked socket may report back-pressure without ever emitting 'drain' once nothing is buffered.
    if (!this.socket.writableNeedDrain) this.wakeAll();
  }

  private wakeAll(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const wake of waiters) wake();
  }
}
