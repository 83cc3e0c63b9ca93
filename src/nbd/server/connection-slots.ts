import { isIP } from 'node:net';

/** Why a connection was not admitted: the whole server, or its client's share, is full of attached clients. */
export type SlotsFull = 'server' | 'client';

export type SlotDecision<T> = { admitted: true; evicted: T | undefined } | { admitted: false; full: SlotsFull };

/**
 * Who may connect: at most `maxTotal` connections, and at most `maxPerClient` from one client (see
 * `clientKey`). When either bound is reached, the oldest connection of that scope that has not
 * finished its handshake makes room, so idle or slow handshakes cannot hold slots against a client
 * that is ready to talk; only when every slot in the scope is attached is the newcomer refused.
 */
export class ConnectionSlots<T> {
  private readonly clientOf = new Map<T, string>();
  private readonly perClient = new Map<string, number>();
  /** Connections still negotiating, oldest first (a Set iterates in insertion order). */
  private readonly handshaking = new Set<T>();

  constructor(
    readonly maxTotal: number,
    readonly maxPerClient: number,
  ) {}

  get size(): number {
    return this.clientOf.size;
  }

  /**
   * Decides on a newcomer from `client`; an evicted connection has been released here already and
   * the caller closes it. Call `add` right after an admission.
   */
  admit(client: string): SlotDecision<T> {
    const clientFull = (this.perClient.get(client) ?? 0) >= this.maxPerClient;
    const serverFull = this.clientOf.size >= this.maxTotal;
    if (!clientFull && !serverFull) return { admitted: true, evicted: undefined };
    // A client at its share makes room among its own connections: it must not take others' slots.
    const evicted = this.oldestHandshake(clientFull ? client : undefined);
    if (evicted === undefined) return { admitted: false, full: serverFull ? 'server' : 'client' };
    this.release(evicted);
    return { admitted: true, evicted };
  }

  /** A connection admitted for `client`, in its handshake until `attached`. */
  add(conn: T, client: string): void {
    this.clientOf.set(conn, client);
    this.perClient.set(client, (this.perClient.get(client) ?? 0) + 1);
    this.handshaking.add(conn);
  }

  /** The handshake is over: the connection is no longer a candidate for eviction. */
  attached(conn: T): void {
    this.handshaking.delete(conn);
  }

  /** The connection is gone (or evicted); releasing twice is harmless. */
  release(conn: T): void {
    const client = this.clientOf.get(conn);
    if (client === undefined) return;
    this.clientOf.delete(conn);
    this.handshaking.delete(conn);
    const left = (this.perClient.get(client) ?? 1) - 1;
    if (left === 0) this.perClient.delete(client);
    else this.perClient.set(client, left);
  }

  private oldestHandshake(client: string | undefined): T | undefined {
    for (const conn of this.handshaking) {
      if (client === undefined || this.clientOf.get(conn) === client) return conn;
    }
    return undefined;
  }
}

/**
 * The client a connection counts against: a TCP peer's IPv4 address (IPv4-mapped IPv6 included),
 * an IPv6 peer's /64 (what one host or site is usually given), or `unix` for every Unix-socket peer
 * (telling their users apart needs SO_PEERCRED, which Node does not expose).
 */
export function clientKey(transport: 'tcp' | 'unix', remoteAddress: string | undefined): string {
  if (transport === 'unix') return 'unix';
  if (remoteAddress === undefined) return 'tcp:unknown';
  const address = remoteAddress.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIP(address) !== 6) return address;
  return `${ipv6Groups(address).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address, in lower-case hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  const [head = '', tail] = address.split('::');
  const split = (part: string): string[] => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g]))); // a trailing IPv4 is two groups
  const front = split(head);
  const back = tail === undefined ? [] : split(tail);
  const zeros = Array.from({ length: Math.max(0, 8 - front.length - back.length) }, () => '0');
  return [...front, ...zeros, ...back].map((g) => parseInt(g, 16).toString(16));
}
