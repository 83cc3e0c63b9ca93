import type { Socket } from 'node:net';

/**
 * Writes whole replies to a socket. Each `send` puts all its buffers on the wire back to back (replies
 * of concurrent requests never interleave inside a chunk) and resolves once the socket has accepted
 * them, waiting for 'drain' under back-pressure. After the socket closes, sends are dropped.
 */
export class ReplyWriter {
  private drainWaiters: (() => void)[] = [];
  private closed = false;

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
    if (buffers.length > 1) this.socket.cork();
    let ok = true;
    for (const buf of buffers) ok = this.socket.write(buf) && ok;
    if (buffers.length > 1) this.socket.uncork();
    if (ok || !this.socket.writableNeedDrain) return;
    await new Promise<void>((resolve) => {
      if (this.isClosed) resolve();
      else this.drainWaiters.push(resolve);
    });
  }

  private wakeAll(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const wake of waiters) wake();
  }
}
