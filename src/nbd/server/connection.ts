import type { Socket } from 'node:net';
import { isCairnError } from '../../core/errors.js';
import { NbdByteQueue } from '../protocol/byte-queue.js';
import type { ByteBudget } from './byte-budget.js';
import type { ReplyBufferPool } from './reply-buffers.js';
import type { ExportRegistry } from './export-registry.js';
import { negotiate } from './negotiation.js';
import type { NbdLogger } from './nbd-logger.js';
import { errorMessage } from './nbd-errors.js';
import { ReplyWriter } from './reply-writer.js';
import { Transmission } from './transmission.js';

export interface ConnectionOptions {
  registry: ExportRegistry;
  log: NbdLogger;
  maxPayload: number;
  negotiationTimeoutMs: number;
  writeStallTimeoutMs: number;
  connectionBudgetBytes: number;
  serverBudget: ByteBudget;
  replyBuffers?: ReplyBufferPool;
  newConnectionBudget: () => ByteBudget;
}

/**
 * One client from accept to close. `done` settles when the socket is gone, whatever happened; no
 * callback here throws, and every failure ends in a log line and a closed socket.
 */
export class NbdConnection {
  readonly done: Promise<void>;
  private phase: 'negotiation' | 'transmission' | 'closing' = 'negotiation';
  private shuttingDown = false;
  private transmission: Transmission | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly options: ConnectionOptions,
  ) {
    socket.setNoDelay(true);
    // Errors (ECONNRESET, EPIPE) surface through 'close'; without a listener they would crash the process.
    socket.on('error', (err) => options.log.debug({ err: errorMessage(err) }, 'NBD socket error'));
    this.done = this.run().catch((err: unknown) => {
      options.log.error({ err }, 'NBD connection failed unexpectedly');
      socket.destroy();
    });
  }

  /** Graceful stop: negotiating clients are dropped, transmitting ones get their in-flight replies first. */
  shutdown(): void {
    this.shuttingDown = true;
    if (this.phase === 'negotiation') this.socket.destroy();
    else this.transmission?.stop();
  }

  private async run(): Promise<void> {
    const { socket, options } = this;
    const queue = NbdByteQueue.fromStream(socket, 2 * 1024 * 1024);
    const writer = new ReplyWriter(socket, options.writeStallTimeoutMs, () =>
      options.log.warn({ timeoutMs: options.writeStallTimeoutMs }, 'NBD client stopped reading replies; dropping it'),
    );
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const timer = setTimeout(() => {
      options.log.info({ timeoutMs: options.negotiationTimeoutMs }, 'NBD client did not finish the handshake in time; closing');
      socket.destroy();
    }, options.negotiationTimeoutMs);
    timer.unref();
    try {
      const session = await negotiate({
        queue,
        writer,
        registry: options.registry,
        log: options.log,
        maxPayload: options.maxPayload,
        isShuttingDown: () => this.shuttingDown,
      });
      clearTimeout(timer);
      if (!session) return;
      this.phase = 'transmission';
      options.log.info({ export: session.export.name, structuredReplies: session.structuredReplies }, 'NBD client attached');
      this.transmission = new Transmission({
        queue,
        writer,
        session,
        log: options.log,
        maxPayload: options.maxPayload,
        budgets: [options.newConnectionBudget(), options.serverBudget],
        ...(options.replyBuffers ? { replyBuffers: options.replyBuffers } : {}),
      });
      if (this.shuttingDown) this.transmission.stop();
      await this.transmission.run();
    } catch (err) {
      this.reportFailure(err);
    } finally {
      clearTimeout(timer);
      this.phase = 'closing';
      // end() lets queued replies reach the client; destroy() follows if it never reads them.
      socket.end();
      const linger = setTimeout(() => socket.destroy(), 5000);
      linger.unref();
      await closed;
      clearTimeout(linger);
    }
  }

  private reportFailure(err: unknown): void {
    if (isCairnError(err, 'ERR_NBD_PROTOCOL')) {
      if (err.context.truncated === false && this.phase === 'negotiation') {
        this.options.log.debug({}, 'NBD client closed during the handshake');
      } else {
        this.options.log.warn({ err: err.message, ...err.context }, 'NBD protocol violation; dropping the client');
      }
      return;
    }
    this.options.log.error({ err }, 'NBD connection failed');
  }
}
