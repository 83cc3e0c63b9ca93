import type { Socket } from 'node:net';
import { CairnError } from '../../core/errors.js';
import {
  NBD_CMD,
  NBD_ERROR,
  NBD_MAGIC,
  NBD_REPLY_FLAG,
  NBD_REPLY_TYPE,
  NBD_REPLY_TYPE_ERROR_BIT,
  NBD_SIZE,
  decodeBlockStatusPayload,
  decodeErrorPayload,
  decodeOffsetHolePayload,
  decodeReplyMagic,
  decodeSimpleReply,
  decodeStructuredReplyHeader,
  encodeRequest,
  nbdName,
  nbdProtocolError,
  readU64beSafe,
  type NbdStructuredReplyHeader,
} from '../protocol/index.js';
import { FieldReader } from './field-reader.js';
import type { NegotiatedExport } from './negotiate.js';
import { placeReadChunk, placeStatusChunk, type StatusExtent } from './reply-placement.js';

export type { StatusExtent } from './reply-placement.js';

interface Pending {
  type: number;
  offset: number;
  length: number;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  /** READ: the caller's destination, where byte 0 of the request goes to `buffer[base]`. */
  buffer?: Buffer;
  base?: number;
  /** READ: the ranges filled so far (relative to the request). */
  filled?: Array<[number, number]>;
  /** BLOCK_STATUS: extents per context id. */
  status?: Map<number, StatusExtent[]>;
  remoteError?: { error: number; message: string };
}

export interface ConnectionOptions {
  /** A request outstanding this long with no byte arriving fails the connection (a stalled server). */
  requestTimeoutMs: number;
  /** Names the server in messages. */
  where: string;
}

/** Bytes a BLOCK_STATUS chunk may carry: the spec's 2^20 extents advice, doubled for slack. */
const MAX_STATUS_CHUNK = 4 + 8 * 2 * 1024 * 1024;
const MAX_ERROR_CHUNK = 6 + 0xffff + 8;
/** A structured reply header plus the u64 offset of an OFFSET_DATA chunk: what one header read asks for. */
const DATA_CHUNK_HEAD = NBD_SIZE.STRUCTURED_REPLY_HEADER + 8;

/**
 * The transmission phase of one NBD connection: requests tagged by cookie, one reply parser that
 * validates every chunk against the request it answers. Any protocol violation, a dropped connection
 * or a stall fails the whole connection and every request on it; an error reply fails only its request.
 *
 * Replies are parsed as the socket reads them (no await per field): a READ chunk's header is checked
 * against its request first, then its payload is read by the kernel straight into the caller's buffer.
 */
export class NbdConnection {
  private readonly pending = new Map<bigint, Pending>();
  private nextCookie = 1n;
  private failure: Error | undefined;
  private closing = false;
  private lastActivityMs = Date.now();
  private stallTimer: NodeJS.Timeout | undefined;
  private bytesInFlight = 0;
  private corked = false;
  readonly reader: FieldReader;
  /** Reply header, and the fixed-size payloads that follow one (data offset, hole). */
  private readonly head = Buffer.alloc(32);
  private header: NbdStructuredReplyHeader | undefined;
  private atReplyStart = true;

  constructor(
    private readonly socket: Socket,
    readonly info: NegotiatedExport,
    private readonly opts: ConnectionOptions,
  ) {
    this.reader = new FieldReader(
      (err) => this.fail(err instanceof Error ? err : new Error(String(err))),
      () => (this.lastActivityMs = Date.now()),
      DATA_CHUNK_HEAD,
    );
    socket.on('error', (err: Error) => this.onEnded(err));
    socket.on('end', () => this.onEnded(undefined));
    socket.on('close', () => this.onEnded(undefined));
    this.expectReply();
  }

  get inFlightBytes(): number {
    return this.bytesInFlight;
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** Reads [offset, offset+length) into `buffer` from `base` on. */
  read(offset: number, length: number, buffer: Buffer, base: number): Promise<void> {
    if (base < 0 || base + length > buffer.length) {
      return Promise.reject(new CairnError('ERR_INVALID_ARGUMENT', `read destination too small for ${length} bytes at ${base}`));
    }
    return this.request(NBD_CMD.NBD_CMD_READ, offset, length, 0, buffer, base) as Promise<void>;
  }

  /** BLOCK_STATUS over [offset, offset+length): extents per context id, clipped to the request. */
  blockStatus(offset: number, length: number): Promise<Map<number, StatusExtent[]>> {
    return this.request(NBD_CMD.NBD_CMD_BLOCK_STATUS, offset, length, 0) as Promise<Map<number, StatusExtent[]>>;
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.request(NBD_CMD.NBD_CMD_TRIM, offset, length, 0);
  }

  private request(type: number, offset: number, length: number, flags: number, buffer?: Buffer, base = 0): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new CairnError('ERR_IO', `NBD connection to ${this.opts.where} is closing`));
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isInteger(length) || length <= 0 || length > 0xffffffff) {
      return Promise.reject(new CairnError('ERR_INVALID_ARGUMENT', `invalid NBD request range ${offset}+${length}`, { offset, length }));
    }
    if (offset + length > this.info.size) {
      return Promise.reject(
        new CairnError('ERR_OUT_OF_RANGE', `NBD request ${offset}+${length} is past the export end ${this.info.size}`, { offset, length }),
      );
    }
    const cookie = this.nextCookie++;
    return new Promise((resolve, reject) => {
      const p: Pending = { type, offset, length, resolve, reject };
      if (type === NBD_CMD.NBD_CMD_READ) {
        p.buffer = buffer;
        p.base = base;
        p.filled = [];
        this.bytesInFlight += length;
      }
      if (type === NBD_CMD.NBD_CMD_BLOCK_STATUS) p.status = new Map();
      if (this.pending.size === 0) this.lastActivityMs = Date.now();
      this.pending.set(cookie, p);
      this.armStallTimer();
      // Requests issued in one tick leave in one write (the pull issues several per chunk).
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
        process.nextTick(() => {
          this.corked = false;
          this.socket.uncork();
        });
      }
      this.socket.write(encodeRequest({ flags, type, cookie, offset, length }));
    });
  }

  private armStallTimer(): void {
    if (this.stallTimer || this.pending.size === 0 || this.failure) return;
    const wait = Math.max(1, this.lastActivityMs + this.opts.requestTimeoutMs - Date.now());
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      if (this.pending.size === 0) return;
      if (Date.now() - this.lastActivityMs >= this.opts.requestTimeoutMs) {
        const first = this.pending.values().next().value as Pending;
        this.fail(
          new CairnError(
            'ERR_TIMEOUT',
            `NBD server ${this.opts.where} stalled: no reply for ${this.opts.requestTimeoutMs} ms ` +
              `(${nbdName(NBD_CMD, first.type)} at offset ${first.offset}, length ${first.length})`,
            { offset: first.offset, length: first.length },
          ),
        );
        return;
      }
      this.armStallTimer();
    }, wait);
    this.stallTimer.unref();
  }

  /** The socket ended or failed: fatal unless we are closing with nothing outstanding. */
  private onEnded(err: Error | undefined): void {
    if (this.failure) return;
    if (this.closing && this.pending.size === 0) return;
    const mid = !(this.atReplyStart && this.reader.fieldEmpty);
    this.fail(
      new CairnError(
        'ERR_IO',
        mid
          ? `NBD server ${this.opts.where} dropped the connection in the middle of a reply (short read)`
          : `NBD server ${this.opts.where} dropped the connection`,
        { where: this.opts.where },
        err ? { cause: err } : undefined,
      ),
    );
  }

  private expectReply(): void {
    this.atReplyStart = true;
    this.header = undefined;
    this.reader.expect(this.head, 0, 4, () => {
      this.atReplyStart = false;
      if (decodeReplyMagic(this.head.subarray(0, 4)) === NBD_MAGIC.NBD_SIMPLE_REPLY_MAGIC) {
        this.reader.expect(this.head, 4, NBD_SIZE.SIMPLE_REPLY, () => this.onSimpleReply());
      } else {
        this.reader.expect(this.head, 4, NBD_SIZE.STRUCTURED_REPLY_HEADER, () => this.onStructuredHeader());
      }
    });
  }

  private take(cookie: bigint): Pending {
    const p = this.pending.get(cookie);
    if (!p) throw nbdProtocolError(`NBD server ${this.opts.where} replied to unknown cookie ${cookie}`);
    return p;
  }

  private onSimpleReply(): void {
    const reply = decodeSimpleReply(this.head.subarray(0, NBD_SIZE.SIMPLE_REPLY));
    const p = this.take(reply.cookie);
    if (reply.error !== 0) {
      this.finish(reply.cookie, p, { error: reply.error, message: '' });
      this.expectReply();
      return;
    }
    if (p.type === NBD_CMD.NBD_CMD_READ) {
      // With structured replies a successful READ must be structured; a simple one cannot be framed.
      if (this.info.structuredReplies) throw nbdProtocolError(`NBD server ${this.opts.where} sent a simple reply to a structured READ`);
      p.filled = [[0, p.length]];
      this.reader.expect(p.buffer!, p.base!, p.base! + p.length, () => {
        this.finish(reply.cookie, p, undefined);
        this.expectReply();
      });
      return;
    }
    if (p.type === NBD_CMD.NBD_CMD_BLOCK_STATUS) {
      throw nbdProtocolError(`NBD server ${this.opts.where} answered BLOCK_STATUS without a status chunk`);
    }
    this.finish(reply.cookie, p, undefined);
    this.expectReply();
  }

  private onStructuredHeader(): void {
    const hdr = decodeStructuredReplyHeader(this.head.subarray(0, NBD_SIZE.STRUCTURED_REPLY_HEADER));
    this.header = hdr;
    const p = this.take(hdr.cookie);
    const where = this.opts.where;
    const at = NBD_SIZE.STRUCTURED_REPLY_HEADER;
    switch (hdr.type) {
      case NBD_REPLY_TYPE.NBD_REPLY_TYPE_NONE:
        if (hdr.length !== 0) throw nbdProtocolError(`NBD server ${where} sent a NONE chunk with a payload`);
        if (!(hdr.flags & NBD_REPLY_FLAG.NBD_REPLY_FLAG_DONE)) throw nbdProtocolError(`NBD server ${where} sent NONE without DONE`);
        this.chunkDone(p);
        return;
      case NBD_REPLY_TYPE.NBD_REPLY_TYPE_OFFSET_DATA: {
        if (p.type !== NBD_CMD.NBD_CMD_READ) throw nbdProtocolError(`NBD server ${where} sent data for ${nbdName(NBD_CMD, p.type)}`);
        if (hdr.length < 9 || hdr.length - 8 > p.length) {
          throw nbdProtocolError(`NBD server ${where} sent an OFFSET_DATA chunk of bad length ${hdr.length}`, { length: hdr.length });
        }
        this.reader.expect(this.head, at, at + 8, () => {
          const offset = readU64beSafe(this.head, at, 'chunk offset');
          const dataLength = hdr.length - 8;
          // Checked before a byte of it is placed: a chunk outside the request never touches the buffer.
          const start = p.base! + placeReadChunk(p, offset, dataLength, this.opts.where);
          this.reader.expect(p.buffer!, start, start + dataLength, () => this.chunkDone(p));
        });
        return;
      }
      case NBD_REPLY_TYPE.NBD_REPLY_TYPE_OFFSET_HOLE: {
        if (p.type !== NBD_CMD.NBD_CMD_READ) throw nbdProtocolError(`NBD server ${where} sent a hole for ${nbdName(NBD_CMD, p.type)}`);
        if (hdr.length !== 12) throw nbdProtocolError(`NBD server ${where} sent an OFFSET_HOLE chunk of length ${hdr.length}`);
        this.reader.expect(this.head, at, at + 12, () => {
          const hole = decodeOffsetHolePayload(this.head.subarray(at, at + 12));
          const start = p.base! + placeReadChunk(p, hole.offset, hole.length, this.opts.where);
          p.buffer!.fill(0, start, start + hole.length);
          this.chunkDone(p);
        });
        return;
      }
      case NBD_REPLY_TYPE.NBD_REPLY_TYPE_BLOCK_STATUS: {
        if (p.type !== NBD_CMD.NBD_CMD_BLOCK_STATUS) {
          throw nbdProtocolError(`NBD server ${where} sent block status for ${nbdName(NBD_CMD, p.type)}`);
        }
        if (hdr.length > MAX_STATUS_CHUNK) throw nbdProtocolError(`NBD server ${where} sent a ${hdr.length}-byte status chunk`);
        const payload = Buffer.allocUnsafe(hdr.length);
        this.reader.expect(payload, 0, hdr.length, () => {
          placeStatusChunk(p, decodeBlockStatusPayload(payload), this.info, this.opts.where);
          this.chunkDone(p);
        });
        return;
      }
      default: {
        if (!(hdr.type & NBD_REPLY_TYPE_ERROR_BIT)) {
          throw nbdProtocolError(`NBD server ${where} sent unknown reply chunk type ${hdr.type}`, { type: hdr.type });
        }
        if (hdr.length > MAX_ERROR_CHUNK) throw nbdProtocolError(`NBD server ${where} sent a ${hdr.length}-byte error chunk`);
        const payload = Buffer.allocUnsafe(hdr.length);
        this.reader.expect(payload, 0, hdr.length, () => {
          const e = decodeErrorPayload(hdr.type, payload);
          // Unknown error chunk types still fail the request (spec); keep the first error.
          p.remoteError ??= { error: e.error === 0 ? NBD_ERROR.NBD_EINVAL : e.error, message: e.message };
          this.chunkDone(p);
        });
      }
    }
  }

  /** One structured chunk is complete: the reply ends with the DONE flag. */
  private chunkDone(p: Pending): void {
    const hdr = this.header!;
    if (hdr.flags & NBD_REPLY_FLAG.NBD_REPLY_FLAG_DONE) this.finish(hdr.cookie, p, p.remoteError);
    this.expectReply();
  }

  private finish(cookie: bigint, p: Pending, remoteError: { error: number; message: string } | undefined): void {
    this.pending.delete(cookie);
    if (p.type === NBD_CMD.NBD_CMD_READ) this.bytesInFlight -= p.length;
    if (remoteError) {
      const name = nbdName(NBD_ERROR, remoteError.error);
      p.reject(
        new CairnError(
          'ERR_NBD_REMOTE',
          `NBD server ${this.opts.where} failed ${nbdName(NBD_CMD, p.type)} at offset ${p.offset}, length ${p.length}: ` +
            `${name}${remoteError.message ? ` (${remoteError.message})` : ''}`,
          { offset: p.offset, length: p.length, error: remoteError.error },
        ),
      );
      return;
    }
    if (p.type === NBD_CMD.NBD_CMD_READ) {
      const covered = p.filled!.reduce((sum, [s, e]) => sum + e - s, 0);
      if (covered !== p.length) {
        this.fail(
          nbdProtocolError(`NBD server ${this.opts.where} returned a short read: ${covered} of ${p.length} bytes at offset ${p.offset}`, {
            offset: p.offset,
            length: p.length,
            covered,
          }),
        );
        p.reject(this.failure!);
        return;
      }
      p.resolve(undefined);
      return;
    }
    if (p.type === NBD_CMD.NBD_CMD_BLOCK_STATUS) {
      if (p.status!.size !== this.info.metaContexts.size) {
        this.fail(nbdProtocolError(`NBD server ${this.opts.where} omitted a meta context from its block status reply`));
        p.reject(this.failure!);
        return;
      }
      p.resolve(p.status);
      return;
    }
    p.resolve(undefined);
  }

  /** Fails the connection: every pending request rejects with `err`, the socket is destroyed. */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.reader.stop();
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.bytesInFlight = 0;
    this.socket.destroy();
  }

  /** Soft disconnect (NBD_CMD_DISC) when healthy; the socket is gone afterwards either way. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    if (!this.failure && !this.socket.destroyed) {
      const cookie = this.nextCookie++;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.socket.destroy();
          resolve();
        }, 2000);
        timer.unref();
        this.socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        this.socket.end(encodeRequest({ flags: 0, type: NBD_CMD.NBD_CMD_DISC, cookie, offset: 0, length: 0 }));
      });
    }
    for (const p of this.pending.values()) p.reject(new CairnError('ERR_IO', `NBD connection to ${this.opts.where} closed`));
    this.pending.clear();
    this.socket.destroy();
  }
}
