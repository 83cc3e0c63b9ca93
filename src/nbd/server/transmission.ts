import type { AllocationExtent, ChangeExtent } from '../../core/index.js';
import { isCairnError } from '../../core/errors.js';
import type { NbdByteQueue } from '../protocol/byte-queue.js';
import { NBD_CMD, NBD_CMD_FLAG, NBD_ERROR, NBD_REPLY_FLAG, NBD_SIZE, NBD_STATE, NBD_STATE_DIRTY, nbdName } from '../protocol/constants.js';
import {
  encodeBlockStatusChunk,
  encodeErrorChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOffsetHoleChunk,
  encodeSimpleReply,
  type NbdBlockDescriptor,
} from '../protocol/reply.js';
import { decodeRequest, type NbdRequest } from '../protocol/request.js';
import { nbdProtocolError } from '../protocol/wire.js';
import type { MetaContext } from './meta-contexts.js';
import type { NegotiatedSession } from './negotiation.js';
import type { NbdLogger } from './nbd-logger.js';
import { errorMessage, toNbdError } from './nbd-errors.js';
import type { ReplyWriter } from './reply-writer.js';
import type { ReplyBufferPool } from './reply-buffers.js';
import type { RequestAdmission } from './request-admission.js';

const DONE = NBD_REPLY_FLAG.NBD_REPLY_FLAG_DONE;
/**
 * What a request without data reserves (a refusal, FLUSH, block status): its bookkeeping and a short
 * reply, so a flood of them still fills the budgets. A reply may also exceed its request's
 * reservation by this much uncharged (headers, an error message): a 256 KiB read then reserves
 * exactly 256 KiB and nbdcopy's 64 requests still fit one connection's 16 MiB.
 */
const SMALL_REQUEST_COST = 4096;
/** Upper bound on descriptors per block status chunk (the spec asks for at most 2^20). */
const MAX_DESCRIPTORS = 1 << 16;

export interface TransmissionDeps {
  queue: NbdByteQueue;
  writer: ReplyWriter;
  session: NegotiatedSession;
  log: NbdLogger;
  maxPayload: number;
  /** Requests and reply bytes this connection may have in flight (its budget and the server's). */
  admission: RequestAdmission;
  /** Reused reply payload buffers (shared by the server's connections). */
  replyBuffers?: ReplyBufferPool;
}

/** Why a request is answered with an error before any work. */
interface Refusal {
  error: number;
  message: string;
}

/**
 * The transmission phase of one connection: requests are read in order, admitted within the
 * connection's limits (no further request is read until one is), run concurrently, and answered as
 * they complete (out of order, as the spec allows). Resolves after DISC, a closed stream or
 * `stop()`, once every admitted request has been answered.
 */
export class Transmission {
  private stopping = false;

  constructor(private readonly deps: TransmissionDeps) {}

  /** Requests admitted and not yet answered. */
  get inFlight(): number {
    return this.deps.admission.inFlight;
  }

  /** Stops reading requests; those already started are still answered. */
  stop(): void {
    this.stopping = true;
    this.deps.queue.end();
  }

  async run(): Promise<void> {
    try {
      await this.loop();
    } finally {
      await this.deps.admission.idle();
    }
  }

  private async loop(): Promise<void> {
    const { queue, log, admission } = this.deps;
    while (!this.stopping) {
      let header: Buffer;
      try {
        header = await queue.read(NBD_SIZE.REQUEST);
      } catch (err) {
        if (this.stopping) return;
        if (isCairnError(err, 'ERR_NBD_PROTOCOL') && err.context.truncated) {
          log.info({ got: err.context.got }, 'NBD client disconnected in the middle of a request');
        } else {
          log.debug({}, 'NBD client closed the connection without NBD_CMD_DISC');
        }
        return;
      }
      // A bad magic throws: the stream is out of sync. (No per-request log line: it shows in profiles.)
      const request = decodeRequest(header);
      if (request.type === NBD_CMD.NBD_CMD_DISC) return;
      if (request.type === NBD_CMD.NBD_CMD_WRITE) {
        // The payload must be consumed to stay in sync; beyond the limit we cannot afford to.
        if (request.length > this.deps.maxPayload) {
          throw nbdProtocolError('NBD write payload larger than the maximum', { length: request.length });
        }
        await queue.skip(request.length);
      }
      const refusal = this.refusal(request);
      const cost = refusal || request.type === NBD_CMD.NBD_CMD_BLOCK_STATUS ? SMALL_REQUEST_COST : readCost(request.length);
      // Back-pressure: while the connection is over its limits, no further request is read.
      const waiting = admission.admit(cost);
      if (waiting) await waiting;
      void this.answer(request, cost, refusal);
    }
  }

  /** The error a request gets without any work, or undefined when it is valid. */
  private refusal(request: NbdRequest): Refusal | undefined {
    const { session, maxPayload } = this.deps;
    const size = session.export.reader.size;
    if (request.type === NBD_CMD.NBD_CMD_WRITE || request.type === NBD_CMD.NBD_CMD_TRIM || request.type === NBD_CMD.NBD_CMD_WRITE_ZEROES) {
      return { error: NBD_ERROR.NBD_EPERM, message: 'export is read-only' };
    }
    const allowed = allowedFlags(request.type, session.structuredReplies);
    if (allowed === undefined) return { error: NBD_ERROR.NBD_EINVAL, message: `unknown command ${request.type}` };
    if ((request.flags & ~allowed) !== 0) {
      return {
        error: NBD_ERROR.NBD_EINVAL,
        message: `flags 0x${request.flags.toString(16)} not valid for ${nbdName(NBD_CMD, request.type)}`,
      };
    }
    if (request.type === NBD_CMD.NBD_CMD_FLUSH) return undefined;
    if (request.offset + request.length > size) {
      return {
        error: NBD_ERROR.NBD_EINVAL,
        message: `range ${request.offset}+${request.length} is past the end of the export (${size})`,
      };
    }
    if (request.type === NBD_CMD.NBD_CMD_BLOCK_STATUS) {
      if (session.contexts.length === 0) return { error: NBD_ERROR.NBD_EINVAL, message: 'no meta context was selected' };
      if (request.length === 0) return { error: NBD_ERROR.NBD_EINVAL, message: 'block status of zero length' };
      return undefined;
    }
    if (request.length > maxPayload) {
      return { error: NBD_ERROR.NBD_EINVAL, message: `request of ${request.length} bytes exceeds the maximum of ${maxPayload}` };
    }
    return undefined;
  }

  /** Runs one admitted request to its reply; never rejects, and gives its admission back at the end. */
  private async answer(request: NbdRequest, cost: number, refusal: Refusal | undefined): Promise<void> {
    try {
      if (refusal) await this.sendError(request, refusal.error, refusal.message);
      else if (request.type === NBD_CMD.NBD_CMD_READ) await this.read(request, cost);
      else if (request.type === NBD_CMD.NBD_CMD_BLOCK_STATUS) await this.blockStatus(request, cost);
      else if (request.type === NBD_CMD.NBD_CMD_CACHE) await this.cache(request);
      else await this.sendOk(request);
    } catch (err) {
      this.deps.log.error({ err }, 'NBD request handler failed');
    } finally {
      this.deps.admission.finish(cost);
    }
  }

  /**
   * Sends one reply. Bytes beyond what its request reserved (plus the small allowance) are charged to
   * the budgets, over their limits if need be, until the socket has taken them: every reply counts.
   */
  private send(buffers: readonly Buffer[], reserved: number, onWritten?: () => void): Promise<void> {
    let bytes = 0;
    for (const buffer of buffers) bytes += buffer.length;
    const excess = bytes - reserved - SMALL_REQUEST_COST;
    if (excess <= 0) return this.deps.writer.send(buffers, onWritten);
    return this.sendCharged(buffers, excess, onWritten);
  }

  private async sendCharged(buffers: readonly Buffer[], excess: number, onWritten?: () => void): Promise<void> {
    this.deps.admission.charge(excess);
    try {
      await this.deps.writer.send(buffers, onWritten);
    } finally {
      this.deps.admission.refund(excess);
    }
  }

  private async read(request: NbdRequest, reserved: number): Promise<void> {
    const { reader } = this.deps.session.export;
    const taken: Buffer[] = [];
    let handedOver = false;
    const readPiece = async (offset: number, length: number): Promise<Buffer> => {
      const pool = this.deps.replyBuffers;
      if (!pool || !reader.readInto) return reader.read(offset, length);
      const buffer = pool.take(length);
      taken.push(buffer);
      await reader.readInto(offset, length, buffer);
      return buffer;
    };
    const giveBack = (): void => {
      for (const buffer of taken) this.deps.replyBuffers?.give(buffer);
    };
    try {
      if (!this.deps.session.structuredReplies) {
        const data = await readPiece(request.offset, request.length);
        handedOver = true;
        await this.send([encodeSimpleReply(request.cookie, 0), data], reserved, giveBack);
        return;
      }
      if (request.length === 0) return await this.deps.writer.send([encodeNoneChunk(request.cookie, DONE)]);
      const wholeOnly = (request.flags & NBD_CMD_FLAG.NBD_CMD_FLAG_DF) !== 0;
      const pieces = wholeOnly
        ? [{ offset: request.offset, length: request.length, zero: false }]
        : coverRange(await reader.allocation(request.offset, request.length), request.offset, request.length);
      // Every piece is read before anything is sent: DONE must not be sent while an error is still possible.
      const settled = await Promise.allSettled(pieces.map((p) => (p.zero ? undefined : readPiece(p.offset, p.length))));
      const failed = settled.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      const buffers: Buffer[] = [];
      pieces.forEach((piece, i) => {
        const flags = i === pieces.length - 1 ? DONE : 0;
        const bytes = (settled[i] as PromiseFulfilledResult<Buffer | undefined>).value;
        if (bytes === undefined) buffers.push(encodeOffsetHoleChunk(request.cookie, flags, piece.offset, piece.length));
        else buffers.push(encodeOffsetDataHeader(request.cookie, flags, piece.offset, bytes.length), bytes);
      });
      handedOver = true;
      await this.send(buffers, reserved, giveBack);
    } catch (err) {
      // Buffers not handed to the socket are free again (all pieces have settled by now).
      if (!handedOver) giveBack();
      this.logFailure(request, err);
      await this.sendError(request, toNbdError(err), errorMessage(err), errorOffset(err, request));
    }
  }

  private async cache(request: NbdRequest): Promise<void> {
    try {
      // Reading through the shared reader warms its chunk cache; the bytes themselves are dropped.
      await this.deps.session.export.reader.read(request.offset, request.length);
      await this.sendOk(request);
    } catch (err) {
      this.logFailure(request, err);
      await this.sendError(request, toNbdError(err), errorMessage(err));
    }
  }

  private async blockStatus(request: NbdRequest, reserved: number): Promise<void> {
    const { contexts } = this.deps.session;
    const reqOne = (request.flags & NBD_CMD_FLAG.NBD_CMD_FLAG_REQ_ONE) !== 0;
    try {
      const answers = await Promise.all(contexts.map((ctx) => this.describe(ctx, request)));
      const buffers = answers.map((descriptors, i) => {
        const limited = reqOne ? descriptors.slice(0, 1) : descriptors.slice(0, MAX_DESCRIPTORS);
        return encodeBlockStatusChunk(request.cookie, i === answers.length - 1 ? DONE : 0, i + 1, limited);
      });
      await this.send(buffers, reserved);
    } catch (err) {
      this.logFailure(request, err);
      await this.sendError(request, toNbdError(err), errorMessage(err));
    }
  }

  private async describe(ctx: MetaContext, request: NbdRequest): Promise<NbdBlockDescriptor[]> {
    const { offset, length } = request;
    if (ctx.kind === 'allocation') {
      const extents = await this.deps.session.export.reader.allocation(offset, length);
      const hole = NBD_STATE.NBD_STATE_HOLE | NBD_STATE.NBD_STATE_ZERO;
      return descriptors(coverRange(extents, offset, length), (e) => (e.zero ? hole : 0));
    }
    if (ctx.kind === 'changed') {
      const changes = await ctx.changes.changes(offset, length);
      // Anything the map does not describe counts as changed: that is the safe answer.
      const extents = coverRange(
        changes.map((c: ChangeExtent) => ({ offset: c.offset, length: c.length, zero: !c.changed })),
        offset,
        length,
      );
      return descriptors(extents, (e) => (e.zero ? 0 : NBD_STATE_DIRTY));
    }
    return [{ length, flags: 0 }];
  }

  private sendOk(request: NbdRequest): Promise<void> {
    return this.deps.writer.send([encodeSimpleReply(request.cookie, 0)]);
  }

  private sendError(request: NbdRequest, error: number, message: string, offset?: number): Promise<void> {
    this.deps.log.debug({ cmd: nbdName(NBD_CMD, request.type), error, message }, 'NBD request refused');
    if (!this.deps.session.structuredReplies) return this.deps.writer.send([encodeSimpleReply(request.cookie, error)]);
    return this.deps.writer.send([encodeErrorChunk(request.cookie, DONE, error, message, offset)]);
  }

  private logFailure(request: NbdRequest, err: unknown): void {
    const fields = { cmd: nbdName(NBD_CMD, request.type), offset: request.offset, length: request.length, err };
    if (isCairnError(err, 'ERR_CHUNK_CORRUPT') || isCairnError(err, 'ERR_CHUNK_MISSING')) {
      this.deps.log.error(fields, 'NBD read hit damaged data');
    } else {
      this.deps.log.warn(fields, 'NBD request failed');
    }
  }
}

/**
 * What a read holds in memory while in flight: its reply bytes. The chunks it touches are loaded into
 * the reader's chunk cache, whose memory is bounded on its own (loads in flight included), so charging
 * whole chunks here (as before the cache reused its memory) only held back concurrency.
 */
export function readCost(length: number): number {
  return Math.max(SMALL_REQUEST_COST, length);
}

/** Command flags each command accepts; undefined for unknown commands. */
function allowedFlags(type: number, structuredReplies: boolean): number | undefined {
  switch (type) {
    case NBD_CMD.NBD_CMD_READ:
      return structuredReplies ? NBD_CMD_FLAG.NBD_CMD_FLAG_DF : 0;
    case NBD_CMD.NBD_CMD_BLOCK_STATUS:
      return NBD_CMD_FLAG.NBD_CMD_FLAG_REQ_ONE;
    case NBD_CMD.NBD_CMD_FLUSH:
    case NBD_CMD.NBD_CMD_CACHE:
      return 0;
    default:
      return undefined;
  }
}

/**
 * Clips extents to [offset, offset+length) and fills any gap with data extents, so the result covers
 * the range exactly (readers answering imprecisely must not produce malformed replies).
 */
export function coverRange(extents: readonly AllocationExtent[], offset: number, length: number): AllocationExtent[] {
  const end = offset + length;
  const out: AllocationExtent[] = [];
  let position = offset;
  const push = (start: number, stop: number, zero: boolean): void => {
    if (stop <= start) return;
    const last = out[out.length - 1];
    if (last && last.zero === zero && last.offset + last.length === start) last.length = stop - last.offset;
    else out.push({ offset: start, length: stop - start, zero });
  };
  for (const e of extents) {
    const start = Math.max(e.offset, position);
    const stop = Math.min(e.offset + e.length, end);
    if (stop <= start) continue;
    push(position, start, false);
    push(start, stop, e.zero);
    position = stop;
    if (position >= end) break;
  }
  push(position, end, false);
  return out;
}

function descriptors(extents: AllocationExtent[], flagsOf: (e: AllocationExtent) => number): NbdBlockDescriptor[] {
  const out: NbdBlockDescriptor[] = [];
  for (const e of extents) {
    const flags = flagsOf(e);
    const last = out[out.length - 1];
    if (last && last.flags === flags) last.length += e.length;
    else out.push({ length: e.length, flags });
  }
  return out;
}

/** Where inside the request a damaged chunk starts, for NBD_REPLY_TYPE_ERROR_OFFSET. */
function errorOffset(err: unknown, request: NbdRequest): number | undefined {
  if (!isCairnError(err)) return undefined;
  const at = err.context.offset;
  if (typeof at !== 'number' || err.code === 'ERR_OUT_OF_RANGE') return undefined;
  const clipped = Math.max(at, request.offset);
  return clipped < request.offset + request.length ? clipped : undefined;
}
