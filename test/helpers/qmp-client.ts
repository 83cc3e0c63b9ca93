// A small QMP client for tests: line-delimited JSON over a Unix socket, one command in flight at a
// time (QMP answers in order), events kept for `waitEvent`.
import net from 'node:net';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: unknown;
}

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class QmpClient {
  private buffer = '';
  private readonly queue: Pending[] = [];
  private readonly events: QmpEvent[] = [];
  private eventWaiters: Array<() => void> = [];
  private closedError: Error | undefined;
  private greeting: ((v: unknown) => void) | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.onData(text));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('QMP connection closed')));
  }

  /** Connects, polling until the socket accepts (QEMU creates it a moment after start) or the deadline. */
  static async connect(path: string, deadlineMs = 20_000): Promise<QmpClient> {
    const until = Date.now() + deadlineMs;
    for (;;) {
      try {
        const socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const client = new QmpClient(socket);
        await client.handshake();
        return client;
      } catch (err) {
        if (Date.now() > until) throw new Error(`QMP socket ${path} not ready: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private async handshake(): Promise<void> {
    await new Promise((resolve) => (this.greeting = resolve));
    await this.execute('qmp_capabilities');
  }

  private onData(text: string): void {
    this.buffer += text;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line) this.onMessage(JSON.parse(line) as Record<string, unknown>);
    }
  }

  private onMessage(msg: Record<string, unknown>): void {
    if ('QMP' in msg) {
      this.greeting?.(msg);
      this.greeting = undefined;
      return;
    }
    if ('event' in msg) {
      this.events.push(msg as unknown as QmpEvent);
      const waiters = this.eventWaiters;
      this.eventWaiters = [];
      for (const w of waiters) w();
      return;
    }
    const pending = this.queue.shift();
    if (!pending) return;
    if ('error' in msg) {
      const e = msg['error'] as { class: string; desc: string };
      pending.reject(new QmpError(pending.command, e.class, e.desc));
    } else {
      pending.resolve(msg['return']);
    }
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.queue.splice(0)) p.reject(err);
    for (const w of this.eventWaiters.splice(0)) w();
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    });
  }

  /** HMP through QMP; qemu-io errors come back as text, so callers check the output. */
  async hmp(commandLine: string): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine });
  }

  /** Waits for an event with the given name (optionally matching `filter`), consuming it. */
  async waitEvent(name: string, filter: (e: QmpEvent) => boolean = () => true, timeoutMs = 20_000): Promise<QmpEvent> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const index = this.events.findIndex((e) => e.event === name && filter(e));
      if (index >= 0) return this.events.splice(index, 1)[0]!;
      if (this.closedError) throw this.closedError;
      const left = until - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for QMP event ${name}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.eventWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
