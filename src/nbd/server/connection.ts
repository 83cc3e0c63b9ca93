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
import { RequestAdmission } from './request-admission.js';
import { Transmission } from './transmission.js';

/**
 * Request bytes read from the socket ahead of the request being handled. Requests are 28 bytes and
 * WRITE payloads are discarded as they arrive, so this only needs to cover an option's data (64 KiB
 * at most); more would let every idle-reading connection hold megabytes of a flood.
 */
const REQUEST_READ_AHEAD_BYTES = 256 * 1024;

export interface ConnectionOptions {
  registry: ExportRegistry;
  log: NbdLogger;
  maxPayload: number;
  negotiationTimeoutMs: number;
  writeStallTimeoutMs: number;
  /** Requests one connection may have admitted and unanswered (reading stops at this many). */
  maxRequestsInFlight: number;
  serverBudget: ByteBudget;
  replyBuffers?: ReplyBufferPool;
  newConnectionBudget: () => ByteBudget;
  /** Called once the handshake is over and the client has entered transmission. */
  onAttached?: () => void;
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
  private writer: ReplyWriter | undefined;

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

  /** Reply bytes queued on the socket that the kernel has not taken yet. */
  get queuedBytes(): number {
    return this.writer?.queuedBytes ?? 0;
  }

  /** Requests admitted and not yet answered. */
  get inFlightRequests(): number {
    return this.transmission?.inFlight ?? 0;
  }

  /** Graceful stop: negotiating clients are dropped, transmitting ones get their in-flight replies first. */
  shutdown(): void {
    this.shuttingDown = true;
    if (this.phase === 'negotiation') this.socket.destroy();
    else this.transmission?.stop();
  }

  /** Drops a client that has not finished its handshake, to make room for another. */
  evict(): void {
    if (this.phase === 'negotiation') this.socket.destroy();
  }

  private async run(): Promise<void> {
    const { socket, options } = this;
    const queue = NbdByteQueue.fromStream(socket, REQUEST_READ_AHEAD_BYTES);
    const writer = new ReplyWriter(socket, options.writeStallTimeoutMs, () =>
      options.log.warn({ timeoutMs: options.writeStallTimeoutMs }, 'NBD client stopped reading replies; dropping it'),
    );
    this.writer = writer;
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
      options.onAttached?.();
      options.log.info({ export: session.export.name, structuredReplies: session.structuredReplies }, 'NBD client attached');
      this.transmission = new Transmission({
        queue,
        writer,
        session,
        log: options.log,
        maxPayload: options.maxPayload,
        admission: new RequestAdmission(options.maxRequestsInFlight, [options.newConnectionBudget(), options.serverBudget]),
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
