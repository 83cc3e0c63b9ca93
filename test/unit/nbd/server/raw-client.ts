import { createConnection, type NetConnectOpts, type Socket } from 'node:net';
import {
  NBD_CLIENT_FLAG,
  NBD_REP,
  NBD_REPLY_FLAG,
  NBD_REPLY_TYPE_ERROR_BIT,
  NBD_SIZE,
  NbdByteQueue,
  decodeErrorPayload,
  decodeOptionReplyHeader,
  decodeReplyMagic,
  decodeServerGreeting,
  decodeSimpleReply,
  decodeStructuredReplyHeader,
  encodeClientFlags,
  encodeOption,
  encodeRequest,
  type NbdRequest,
} from '../../../../src/nbd/protocol/index.js';

export interface OptionReply {
  type: number;
  data: Buffer;
}

export interface ReplyChunk {
  cookie: bigint;
  structured: boolean;
  type: number;
  flags: number;
  error: number;
  payload: Buffer;
}

/**
 * A deliberately low-level NBD client for protocol tests: it sends exactly the bytes a test asks for
 * (including malformed ones) and hands back raw replies.
 */
export class RawNbdClient {
  readonly queue: NbdByteQueue;
  readonly closed: Promise<void>;
  handshakeFlags = 0;

  private constructor(readonly socket: Socket) {
    this.queue = NbdByteQueue.fromStream(socket);
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** A Unix socket path, or connect options (TCP with a chosen local address, for per-client limits). */
  static async connect(where: string | NetConnectOpts): Promise<RawNbdClient> {
    const socket = typeof where === 'string' ? createConnection(where) : createConnection(where);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawNbdClient(socket);
  }

  /** Reads the greeting and sends client flags. */
  async handshake(clientFlags = NBD_CLIENT_FLAG.NBD_FLAG_C_FIXED_NEWSTYLE | NBD_CLIENT_FLAG.NBD_FLAG_C_NO_ZEROES): Promise<void> {
    this.handshakeFlags = decodeServerGreeting(await this.queue.read(NBD_SIZE.SERVER_GREETING)).handshakeFlags;
    this.socket.write(encodeClientFlags(clientFlags));
  }

  /** Sends one option and collects replies up to the final ACK or error. */
  async option(option: number, data: Buffer = Buffer.alloc(0)): Promise<OptionReply[]> {
    this.socket.write(encodeOption(option, data));
    return this.optionReplies();
  }

  async optionReplies(): Promise<OptionReply[]> {
    const replies: OptionReply[] = [];
    for (;;) {
      const header = decodeOptionReplyHeader(await this.queue.read(NBD_SIZE.OPTION_REPLY_HEADER));
      const reply = { type: header.type, data: await this.queue.read(header.length) };
      replies.push(reply);
      if (reply.type === NBD_REP.NBD_REP_ACK || (reply.type & 0x80000000) !== 0) return replies;
    }
  }

  /** Offsets beyond 2^53 (hostile ones) are written bit-exact, bypassing the encoder's check. */
  send(request: NbdRequest, payload?: Buffer): void {
    const huge = request.offset > Number.MAX_SAFE_INTEGER;
    const buf = encodeRequest(huge ? { ...request, offset: 0 } : request);
    if (huge) buf.writeBigUInt64BE(BigInt(request.offset), 16);
    this.socket.write(buf);
    if (payload) this.socket.write(payload);
  }

  /** Reads one reply chunk; for simple READ replies `dataLength` bytes of data follow a zero error. */
  async nextChunk(dataLength = 0): Promise<ReplyChunk> {
    const magicBytes = await this.queue.read(4);
    const magic = decodeReplyMagic(magicBytes);
    if (magic === 0x67446698) {
      const rest = await this.queue.read(NBD_SIZE.SIMPLE_REPLY - 4);
      const reply = decodeSimpleReply(Buffer.concat([magicBytes, rest]));
      const payload = reply.error === 0 && dataLength > 0 ? await this.queue.read(dataLength) : Buffer.alloc(0);
      return { cookie: reply.cookie, structured: false, type: 0, flags: NBD_REPLY_FLAG.NBD_REPLY_FLAG_DONE, error: reply.error, payload };
    }
    const rest = await this.queue.read(NBD_SIZE.STRUCTURED_REPLY_HEADER - 4);
    const header = decodeStructuredReplyHeader(Buffer.concat([magicBytes, rest]));
    const payload = await this.queue.read(header.length);
    const error = (header.type & NBD_REPLY_TYPE_ERROR_BIT) !== 0 ? decodeErrorPayload(header.type, payload).error : 0;
    return { cookie: header.cookie, structured: true, type: header.type, flags: header.flags, error, payload };
  }

  /** All chunks of one structured reply (assumes no other request is outstanding). */
  async structuredReply(): Promise<ReplyChunk[]> {
    const chunks: ReplyChunk[] = [];
    for (;;) {
      const chunk = await this.nextChunk();
      chunks.push(chunk);
      if (chunk.flags & NBD_REPLY_FLAG.NBD_REPLY_FLAG_DONE) return chunks;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
