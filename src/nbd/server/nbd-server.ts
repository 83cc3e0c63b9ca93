import { lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { CairnError } from '../../core/errors.js';
import { NBD_SIZE } from '../protocol/constants.js';
import { ByteBudget } from './byte-budget.js';
import { ReplyBufferPool } from './reply-buffers.js';
import { NbdConnection } from './connection.js';
import { ConnectionSlots, clientKey, type SlotsFull } from './connection-slots.js';
import type { ExportRegistry } from './export-registry.js';
import { formatListenAddress, type NbdListenAddress } from './listen-address.js';
import { listenFailure } from './listen-failure.js';
import { silentNbdLogger, type NbdLogger } from './nbd-logger.js';

export interface NbdServerOptions {
  registry: ExportRegistry;
  log?: NbdLogger;
  /**
   * Connections at once (default 256). When full, the oldest connection still in its handshake is
   * dropped for a newcomer; only when all are attached is the newcomer refused.
   */
  maxConnections?: number;
  /** Connections from one client address (see `clientKey`; default 128, at most `maxConnections`). */
  maxConnectionsPerClient?: number;
  /** Requests one connection may have in flight; no more are read meanwhile (default 256). */
  maxRequestsPerConnection?: number;
  /** A client must finish option haggling within this time (default 10 s). */
  negotiationTimeoutMs?: number;
  /** A client that leaves replies unread this long is dropped (default 60 s). */
  writeStallTimeoutMs?: number;
  /** Reply bytes being read or waiting for the socket, per connection (default 16 MiB) and for the server (default 32 MiB). */
  connectionInFlightBytes?: number;
  serverInFlightBytes?: number;
}

/**
 * Reply bytes in flight, for the whole server and per connection; the reply buffer pool keeps as much
 * as the server's. Measured with nbdcopy (256 KiB requests): 8 MiB per connection cost one connection
 * ~15 % of its throughput against 16 MiB; 32 MiB for four connections was as fast as 48.
 */
const SERVER_IN_FLIGHT_BYTES = 32 * 1024 * 1024;
const CONNECTION_IN_FLIGHT_BYTES = 16 * 1024 * 1024;

const MAX_CONNECTIONS = 256;
/** Half the default total: one hypervisor with many disks fits, and never holds every slot. */
const MAX_CONNECTIONS_PER_CLIENT = 128;
/**
 * Above what clients keep in flight (qemu 16, nbdcopy 64, fio's nbd engine its iodepth, Linux's nbd
 * driver 128), so only a client that stops reading replies meets it.
 */
const MAX_REQUESTS_PER_CONNECTION = 256;
/** Real clients finish the handshake in milliseconds; an idle one holds a slot no longer than this. */
const NEGOTIATION_TIMEOUT_MS = 10_000;

/** How often each "limit reached" line may repeat. */
const LIMIT_LOG_INTERVAL_MS = 10_000;

/** A warning printed at most once per interval, counting the occurrences folded into it. */
class ThrottledWarning {
  private lastMs = -Infinity;
  private folded = 0;

  /** The occurrences to report now (this one included), or undefined while quiet. */
  tick(now: number): number | undefined {
    this.folded++;
    if (now - this.lastMs < LIMIT_LOG_INTERVAL_MS) return undefined;
    this.lastMs = now;
    const count = this.folded;
    this.folded = 0;
    return count;
  }
}

/**
 * Cairn's read-only NBD server: listens on TCP or Unix sockets, serves every export the registry
 * resolves, bounds connections and bytes in flight, and shuts down gracefully.
 */
export class NbdServer {
  private readonly listeners: Server[] = [];
  private readonly connections = new Set<NbdConnection>();
  private readonly slots: ConnectionSlots<NbdConnection>;
  private readonly log: NbdLogger;
  private readonly serverBudget: ByteBudget;
  private readonly replyBuffers = new ReplyBufferPool(SERVER_IN_FLIGHT_BYTES);
  private nextConnectionId = 1;
  private closing: Promise<void> | undefined;
  private readonly refusals = new ThrottledWarning();
  private readonly evictions = new ThrottledWarning();

  constructor(private readonly options: NbdServerOptions) {
    this.log = options.log ?? silentNbdLogger;
    this.serverBudget = new ByteBudget(options.serverInFlightBytes ?? SERVER_IN_FLIGHT_BYTES);
    const total = options.maxConnections ?? MAX_CONNECTIONS;
    this.slots = new ConnectionSlots(total, Math.min(total, options.maxConnectionsPerClient ?? MAX_CONNECTIONS_PER_CLIENT));
  }

  /** Open connections, evicted ones included until their socket has closed. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Bytes of replies being prepared or queued on sockets, over all connections (0 when idle). */
  get inFlightBytes(): number {
    return this.serverBudget.inUse;
  }

  /** Reply bytes sitting in sockets' write queues, over all connections: what clients have not read. */
  get queuedReplyBytes(): number {
    let bytes = 0;
    for (const conn of this.connections) bytes += conn.queuedBytes;
    return bytes;
  }

  /** Requests admitted and not yet answered, over all connections. */
  get inFlightRequests(): number {
    let count = 0;
    for (const conn of this.connections) count += conn.inFlightRequests;
    return count;
  }

  /** Starts listening; resolves with the bound address (the real port when 0 was asked). */
  async listen(address: NbdListenAddress): Promise<NbdListenAddress> {
    if (this.closing) throw new CairnError('ERR_INVALID_ARGUMENT', 'NBD server is closed');
    if (address.kind === 'unix') await removeStaleSocket(address.path);
    const server = createServer({ noDelay: true }, (socket) => this.accept(socket, address.kind));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const done = (): void => {
        server.off('error', reject);
        resolve();
      };
      if (address.kind === 'unix') server.listen(address.path, done);
      else server.listen(address.port, address.host, done);
    }).catch(async (err: unknown) => {
      throw await listenFailure(address, err);
    });
    server.on('error', (err) => this.log.error({ err }, 'NBD listener error'));
    this.listeners.push(server);
    const bound: NbdListenAddress =
      address.kind === 'unix' ? address : { kind: 'tcp', host: address.host, port: (server.address() as AddressInfo).port };
    this.log.info({ address: formatListenAddress(bound) }, 'NBD server listening');
    return bound;
  }

  /** Stops accepting, answers in-flight requests, then closes every connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    const stopped = this.listeners.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const conn of this.connections) conn.shutdown();
    await Promise.all([...[...this.connections].map((c) => c.done), ...stopped]);
    // A server whose first listen failed never ran: the caller's error line is all the user needs.
    if (this.listeners.length > 0) this.log.info({}, 'NBD server stopped');
  }

  private accept(socket: Socket, transport: NbdListenAddress['kind']): void {
    socket.on('error', () => undefined);
    if (this.closing) {
      socket.destroy();
      return;
    }
    const client = clientKey(transport, socket.remoteAddress);
    const decision = this.slots.admit(client);
    if (!decision.admitted) {
      socket.destroy();
      this.warnRefused(decision.full, client);
      return;
    }
    if (decision.evicted) {
      decision.evicted.evict();
      this.warnEvicted(client);
    }
    const id = this.nextConnectionId++;
    const log = this.log.child({ conn: id, remote: socket.remoteAddress ?? 'unix' });
    log.debug({}, 'NBD client connected');
    const connectionBudgetBytes = this.options.connectionInFlightBytes ?? CONNECTION_IN_FLIGHT_BYTES;
    const conn: NbdConnection = new NbdConnection(socket, {
      registry: this.options.registry,
      log,
      maxPayload: NBD_SIZE.MAX_PAYLOAD,
      negotiationTimeoutMs: this.options.negotiationTimeoutMs ?? NEGOTIATION_TIMEOUT_MS,
      writeStallTimeoutMs: this.options.writeStallTimeoutMs ?? 60_000,
      maxRequestsInFlight: this.options.maxRequestsPerConnection ?? MAX_REQUESTS_PER_CONNECTION,
      serverBudget: this.serverBudget,
      replyBuffers: this.replyBuffers,
      newConnectionBudget: () => new ByteBudget(connectionBudgetBytes),
      onAttached: () => this.slots.attached(conn),
    });
    this.slots.add(conn, client);
    this.connections.add(conn);
    void conn.done.then(() => {
      this.slots.release(conn);
      this.connections.delete(conn);
      log.debug({}, 'NBD client gone');
    });
  }

  private warnRefused(full: SlotsFull, client: string): void {
    const count = this.refusals.tick(Date.now());
    if (count === undefined) return;
    const { maxTotal, maxPerClient } = this.slots;
    if (full === 'server') {
      this.log.warn(
        { limit: maxTotal, refused: count, client },
        `NBD connection limit (${maxTotal}) reached with every client past its handshake; refusing new clients`,
      );
    } else {
      this.log.warn(
        { limit: maxPerClient, refused: count, client },
        `NBD client ${client} holds ${maxPerClient} connections past their handshake (the limit per client); refusing it more`,
      );
    }
  }

  private warnEvicted(client: string): void {
    const count = this.evictions.tick(Date.now());
    if (count === undefined) return;
    this.log.warn(
      { limit: this.slots.maxTotal, perClient: this.slots.maxPerClient, dropped: count, client },
      `NBD connection limit reached (${this.slots.maxTotal} in all, ${this.slots.maxPerClient} per client); dropping the oldest connection still in its handshake for each new client`,
    );
  }
}

/** A socket file left by a crashed server is removed; one with a live server behind it is not. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    if (!(await lstat(path)).isSocket()) return;
  } catch {
    return;
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!live) await unlink(path).catch(() => undefined);
}
