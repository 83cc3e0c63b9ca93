import type { Socket } from 'node:net';
import { CairnError } from '../../core/errors.js';
import { redactNbdSecrets } from '../../formats/nbd-uri.js';
import {
  NBD_CLIENT_FLAG,
  NBD_HANDSHAKE_FLAG,
  NBD_INFO,
  NBD_OPT,
  NBD_REP,
  NBD_SIZE,
  NbdByteQueue,
  decodeExportNameReply,
  decodeOptionReplyHeader,
  decodeRepErrorMessage,
  decodeRepInfo,
  decodeRepMetaContext,
  decodeServerGreeting,
  encodeClientFlags,
  encodeInfoRequest,
  encodeMetaContextRequest,
  encodeOption,
  isOptionReplyError,
  nbdName,
  nbdProtocolError,
} from '../protocol/index.js';

/** Block size constraints the client obeys (spec defaults when the server sends none). */
export interface NbdBlockSizes {
  minimum: number;
  preferred: number;
  maximum: number;
}

/** What the handshake established for one connection. */
export interface NegotiatedExport {
  size: number;
  transmissionFlags: number;
  blockSizes: NbdBlockSizes;
  structuredReplies: boolean;
  /** Selected meta contexts: name → the id the server gave this connection. */
  metaContexts: Map<string, number>;
  description?: string;
}

export interface NegotiateOptions {
  exportName: string;
  /** Meta contexts to select (exact names, no wildcards); missing ones are simply absent in the result. */
  metaContexts: readonly string[];
  /** Where the server is, for messages. */
  where: string;
}

/** Bytes we accept in one option reply; the largest legitimate one is a 4096-byte string plus framing. */
const MAX_OPTION_REPLY = 64 * 1024;

const DEFAULT_BLOCK_SIZES: NbdBlockSizes = { minimum: 1, preferred: 4096, maximum: NBD_SIZE.MAX_PAYLOAD };

interface OptionReply {
  type: number;
  data: Buffer;
}

/**
 * Fixed-newstyle handshake from the client side: structured replies, meta contexts, then GO with a
 * block-size request (EXPORT_NAME as the fallback for servers without GO). The caller enforces the
 * deadline by destroying the socket.
 */
export async function negotiate(socket: Socket, queue: NbdByteQueue, opts: NegotiateOptions): Promise<NegotiatedExport> {
  const { handshakeFlags } = decodeServerGreeting(await queue.read(NBD_SIZE.SERVER_GREETING));
  const fixed = (handshakeFlags & NBD_HANDSHAKE_FLAG.NBD_FLAG_FIXED_NEWSTYLE) !== 0;
  const noZeroes = (handshakeFlags & NBD_HANDSHAKE_FLAG.NBD_FLAG_NO_ZEROES) !== 0;
  let clientFlags = 0;
  if (fixed) clientFlags |= NBD_CLIENT_FLAG.NBD_FLAG_C_FIXED_NEWSTYLE;
  if (noZeroes) clientFlags |= NBD_CLIENT_FLAG.NBD_FLAG_C_NO_ZEROES;
  socket.write(encodeClientFlags(clientFlags));

  // Plain (unfixed) newstyle servers cannot answer options: only EXPORT_NAME is safe.
  if (!fixed) return exportNameFallback(socket, queue, opts, noZeroes, false, new Map());

  // STARTTLS goes here (TLS issue): it must come first, since it discards all earlier option state.
  const structuredReplies = await simpleOption(socket, queue, NBD_OPT.NBD_OPT_STRUCTURED_REPLY, opts);
  const metaContexts = new Map<string, number>();
  if (structuredReplies && opts.metaContexts.length > 0) {
    socket.write(
      encodeOption(
        NBD_OPT.NBD_OPT_SET_META_CONTEXT,
        encodeMetaContextRequest({ exportName: opts.exportName, queries: [...opts.metaContexts] }),
      ),
    );
    for (;;) {
      const reply = await readOptionReply(queue, NBD_OPT.NBD_OPT_SET_META_CONTEXT);
      if (reply.type === NBD_REP.NBD_REP_ACK) break;
      if (reply.type === NBD_REP.NBD_REP_META_CONTEXT) {
        const { contextId, name } = decodeRepMetaContext(reply.data);
        if (!opts.metaContexts.includes(name)) {
          throw nbdProtocolError(`NBD server ${opts.where} selected meta context ${name}, which was not asked for`, { name });
        }
        metaContexts.set(name, contextId);
        continue;
      }
      if (isOptionReplyError(reply.type)) {
        // Not fatal: the caller decides whether it can work without the contexts it asked for.
        if (reply.type === NBD_REP.NBD_REP_ERR_UNKNOWN) throw unknownExport(opts, reply);
        metaContexts.clear();
        break;
      }
      throw unexpectedReply(opts, NBD_OPT.NBD_OPT_SET_META_CONTEXT, reply);
    }
  }

  socket.write(encodeOption(NBD_OPT.NBD_OPT_GO, encodeInfoRequest({ exportName: opts.exportName, infos: [NBD_INFO.NBD_INFO_BLOCK_SIZE] })));
  let size: number | undefined;
  let transmissionFlags = 0;
  let blockSizes = DEFAULT_BLOCK_SIZES;
  let description: string | undefined;
  for (;;) {
    const reply = await readOptionReply(queue, NBD_OPT.NBD_OPT_GO);
    if (reply.type === NBD_REP.NBD_REP_INFO) {
      const info = decodeRepInfo(reply.data);
      if (info.kind === 'export') {
        size = info.size;
        transmissionFlags = info.transmissionFlags;
      } else if (info.kind === 'block-size') {
        blockSizes = checkBlockSizes(info, opts);
      } else if (info.kind === 'description') {
        description = info.description;
      }
      continue;
    }
    if (reply.type === NBD_REP.NBD_REP_ACK) break;
    if (reply.type === NBD_REP.NBD_REP_ERR_UNSUP) {
      return exportNameFallback(socket, queue, opts, noZeroes, structuredReplies, metaContexts);
    }
    if (reply.type === NBD_REP.NBD_REP_ERR_UNKNOWN) throw unknownExport(opts, reply);
    if (reply.type === NBD_REP.NBD_REP_ERR_TLS_REQD) {
      throw new CairnError('ERR_NBD_REMOTE', `NBD server ${opts.where} requires TLS, which Cairn does not speak yet`, {
        exportName: redactNbdSecrets(opts.exportName),
      });
    }
    if (isOptionReplyError(reply.type)) throw optionFailed(opts, NBD_OPT.NBD_OPT_GO, reply);
    throw unexpectedReply(opts, NBD_OPT.NBD_OPT_GO, reply);
  }
  if (size === undefined) throw nbdProtocolError(`NBD server ${opts.where} ended GO without NBD_INFO_EXPORT`);
  return { size, transmissionFlags, blockSizes, structuredReplies, metaContexts, ...(description ? { description } : {}) };
}

async function exportNameFallback(
  socket: Socket,
  queue: NbdByteQueue,
  opts: NegotiateOptions,
  noZeroes: boolean,
  structuredReplies: boolean,
  metaContexts: Map<string, number>,
): Promise<NegotiatedExport> {
  socket.write(encodeOption(NBD_OPT.NBD_OPT_EXPORT_NAME, Buffer.from(opts.exportName, 'utf8')));
  // EXPORT_NAME has no error path: a server that does not know the export just hangs up.
  let head: Buffer;
  try {
    head = await queue.read(NBD_SIZE.EXPORT_NAME_REPLY);
  } catch (err) {
    throw new CairnError(
      'ERR_NOT_FOUND',
      `NBD server ${opts.where} closed the connection: no such export?`,
      {
        exportName: redactNbdSecrets(opts.exportName),
      },
      { cause: err },
    );
  }
  const { size, transmissionFlags } = decodeExportNameReply(head);
  if (!noZeroes) await queue.skip(NBD_SIZE.EXPORT_NAME_PADDING);
  return { size, transmissionFlags, blockSizes: DEFAULT_BLOCK_SIZES, structuredReplies, metaContexts };
}

/** An option without data answered by a lone ACK; false when the server does not support it. */
async function simpleOption(socket: Socket, queue: NbdByteQueue, option: number, opts: NegotiateOptions): Promise<boolean> {
  socket.write(encodeOption(option));
  const reply = await readOptionReply(queue, option);
  if (reply.type === NBD_REP.NBD_REP_ACK) return true;
  if (isOptionReplyError(reply.type)) return false;
  throw unexpectedReply(opts, option, reply);
}

async function readOptionReply(queue: NbdByteQueue, option: number): Promise<OptionReply> {
  const header = decodeOptionReplyHeader(await queue.read(NBD_SIZE.OPTION_REPLY_HEADER));
  if (header.option !== option) {
    throw nbdProtocolError(`NBD option reply for ${nbdName(NBD_OPT, header.option)} while waiting for ${nbdName(NBD_OPT, option)}`);
  }
  if (header.length > MAX_OPTION_REPLY) {
    throw nbdProtocolError(`NBD option reply of ${header.length} bytes is too large`, { length: header.length });
  }
  return { type: header.type, data: await queue.read(header.length) };
}

function checkBlockSizes(info: { minimum: number; preferred: number; maximum: number }, opts: NegotiateOptions): NbdBlockSizes {
  const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
  const { minimum, preferred, maximum } = info;
  if (!pow2(minimum) || minimum > 64 * 1024 || !pow2(preferred) || preferred < minimum || maximum < minimum) {
    throw nbdProtocolError(`NBD server ${opts.where} sent invalid block sizes ${minimum}/${preferred}/${maximum}`, info);
  }
  // 0xffffffff means "no limit"; we never send more than the portable 32 MiB anyway.
  return { minimum, preferred, maximum: Math.min(maximum, NBD_SIZE.MAX_PAYLOAD) };
}

function unknownExport(opts: NegotiateOptions, reply: OptionReply): CairnError {
  const msg = decodeRepErrorMessage(reply.data);
  return new CairnError('ERR_NOT_FOUND', `NBD server ${opts.where} has no such export${msg ? `: ${redactNbdSecrets(msg)}` : ''}`, {
    exportName: redactNbdSecrets(opts.exportName),
  });
}

function optionFailed(opts: NegotiateOptions, option: number, reply: OptionReply): CairnError {
  const msg = decodeRepErrorMessage(reply.data);
  return new CairnError(
    'ERR_NBD_REMOTE',
    `NBD server ${opts.where} refused ${nbdName(NBD_OPT, option)}: ${nbdName(NBD_REP, reply.type)}${msg ? ` (${msg})` : ''}`,
    { option, reply: reply.type },
  );
}

function unexpectedReply(opts: NegotiateOptions, option: number, reply: OptionReply): CairnError {
  return nbdProtocolError(`NBD server ${opts.where} answered ${nbdName(NBD_OPT, option)} with ${nbdName(NBD_REP, reply.type)}`, {
    option,
    reply: reply.type,
  });
}
