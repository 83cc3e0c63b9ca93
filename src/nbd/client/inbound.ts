import type { Socket } from 'node:net';
import { NbdByteQueue, nbdProtocolError } from '../protocol/index.js';
import type { SocketReadTarget } from './field-reader.js';

/** Bytes a server may send during the handshake before we read them: option replies are small. */
const MAX_HANDSHAKE_BACKLOG = 1024 * 1024;

/**
 * A connection's inbound bytes: during the handshake they are copied into a byte queue for the
 * negotiation code; afterwards they go to the transmission-phase reply parser, which reads them in place.
 */
export class ConnectionInbound implements SocketReadTarget {
  readonly queue = new NbdByteQueue();
  private next: SocketReadTarget | undefined;
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  private socket: Socket | undefined;

  /** Ends the handshake queue with the socket (the parser watches the socket itself afterwards). */
  attach(socket: Socket): void {
    this.socket = socket;
    socket.on('end', () => this.queue.end());
    socket.on('close', () => this.queue.end());
    socket.on('error', (err: Error) => this.queue.end(err));
  }

  nextBuffer(): Buffer {
    return this.next ? this.next.nextBuffer() : this.scratch;
  }

  onRead(length: number, buffer: Buffer): void {
    if (this.next) {
      this.next.onRead(length, buffer);
      return;
    }
    // A copy: the scratch buffer is reused by the next read.
    this.queue.push(Buffer.from(buffer.subarray(0, length)));
    if (this.queue.bufferedBytes > MAX_HANDSHAKE_BACKLOG) {
      const err = nbdProtocolError(`NBD server sent more than ${MAX_HANDSHAKE_BACKLOG} unrequested bytes during the handshake`);
      this.queue.end(err);
      this.socket?.destroy(err);
    }
  }

  /** From now on bytes go to `next`; bytes already queued and not consumed by the handshake are returned. */
  handOver(next: SocketReadTarget): number {
    this.next = next;
    return this.queue.bufferedBytes;
  }
}
