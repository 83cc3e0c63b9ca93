import type { NbdByteQueue } from '../protocol/byte-queue.js';
import {
  NBD_CLIENT_FLAG,
  NBD_HANDSHAKE_FLAG,
  NBD_INFO,
  NBD_OPT,
  NBD_REP,
  NBD_SIZE,
  NBD_TRANSMISSION_FLAG,
  nbdName,
} from '../protocol/constants.js';
import { decodeClientFlags, encodeExportNameReply, encodeServerGreeting } from '../protocol/handshake.js';
import { decodeInfoRequest, decodeMetaContextRequest, decodeOptionHeader } from '../protocol/option.js';
import { encodeOptionReply, encodeRepInfo, encodeRepMetaContext, encodeRepServer } from '../protocol/option-reply.js';
import { clippedNbdString, decodeNbdString, nbdProtocolError } from '../protocol/wire.js';
import type { ExportRegistry, ResolvedExport } from './export-registry.js';
import { matchMetaContexts, type MetaContext } from './meta-contexts.js';
import type { NbdLogger } from './nbd-logger.js';
import type { ReplyWriter } from './reply-writer.js';
import { errorMessage, openFailureReply } from './nbd-errors.js';

/** Option data we are willing to hold; real options are a few hundred bytes (strings cap at 4096). */
const MAX_OPTION_DATA = 64 * 1024;

/**
 * Queries per LIST/SET_META_CONTEXT. Each `cairn:changed:POINT` loads a change map, and each selected
 * context adds a chunk of up to 512 KiB to every block status reply; real clients ask for one or two
 * (qemu: base:allocation and one bitmap). The spec allows ERR_TOO_BIG for more than a server will take.
 */
const MAX_META_CONTEXT_QUERIES = 16;

const SUPPORTED_CLIENT_FLAGS = NBD_CLIENT_FLAG.NBD_FLAG_C_FIXED_NEWSTYLE | NBD_CLIENT_FLAG.NBD_FLAG_C_NO_ZEROES;

/** Transmission flags of every Cairn export: read-only, multi-conn safe (nothing to flush), CACHE honoured. */
export function exportTransmissionFlags(structuredReplies: boolean): number {
  const f = NBD_TRANSMISSION_FLAG;
  return (
    f.NBD_FLAG_HAS_FLAGS |
    f.NBD_FLAG_READ_ONLY |
    f.NBD_FLAG_SEND_FLUSH |
    f.NBD_FLAG_CAN_MULTI_CONN |
    f.NBD_FLAG_SEND_CACHE |
    // DF is only meaningful once structured replies are on (spec).
    (structuredReplies ? f.NBD_FLAG_SEND_DF : 0)
  );
}

/** What the transmission phase inherits from option haggling. */
export interface NegotiatedSession {
  export: ResolvedExport;
  structuredReplies: boolean;
  /** Selected contexts; the context id of `contexts[i]` is i + 1. */
  contexts: MetaContext[];
}

interface State {
  structuredReplies: boolean;
  noZeroes: boolean;
  selected: { exportName: string; contexts: MetaContext[] } | undefined;
}

export interface NegotiationDeps {
  queue: NbdByteQueue;
  writer: ReplyWriter;
  registry: ExportRegistry;
  log: NbdLogger;
  maxPayload: number;
  isShuttingDown: () => boolean;
}

/**
 * The fixed newstyle handshake and option haggling. Resolves with the session once the client enters
 * transmission (EXPORT_NAME or GO), or undefined when it aborted; protocol violations that leave the
 * stream unusable reject with ERR_NBD_PROTOCOL and the caller drops the connection.
 */
export async function negotiate(deps: NegotiationDeps): Promise<NegotiatedSession | undefined> {
  const { queue, writer } = deps;
  await writer.send([encodeServerGreeting(NBD_HANDSHAKE_FLAG.NBD_FLAG_FIXED_NEWSTYLE | NBD_HANDSHAKE_FLAG.NBD_FLAG_NO_ZEROES)]);
  const clientFlags = decodeClientFlags(await queue.read(NBD_SIZE.CLIENT_FLAGS));
  if ((clientFlags & ~SUPPORTED_CLIENT_FLAGS) !== 0) {
    // The spec requires closing on flags we did not offer.
    throw nbdProtocolError('NBD client sent unknown client flags', { clientFlags });
  }
  const state: State = {
    structuredReplies: false,
    noZeroes: (clientFlags & NBD_CLIENT_FLAG.NBD_FLAG_C_NO_ZEROES) !== 0,
    selected: undefined,
  };
  for (;;) {
    const header = decodeOptionHeader(await queue.read(NBD_SIZE.OPTION_HEADER));
    const reply = (type: number, data?: Buffer): Promise<void> => writer.send([encodeOptionReply(header.option, type, data)]);
    // Error messages are clipped to the spec's 4096 bytes: libnbd drops the connection on longer ones.
    const replyError = (type: number, message: string): Promise<void> => reply(type, clippedNbdString(message));
    deps.log.debug({ option: nbdName(NBD_OPT, header.option), length: header.length }, 'NBD option');

    if (header.length > MAX_OPTION_DATA) {
      if (header.length > deps.maxPayload || header.option === NBD_OPT.NBD_OPT_EXPORT_NAME) {
        throw nbdProtocolError('NBD option data too large', { option: header.option, length: header.length });
      }
      await queue.skip(header.length);
      await replyError(NBD_REP.NBD_REP_ERR_TOO_BIG, `option data of ${header.length} bytes is too large`);
      continue;
    }
    const data = await queue.read(header.length);

    if (header.option === NBD_OPT.NBD_OPT_ABORT) {
      await reply(NBD_REP.NBD_REP_ACK);
      return undefined;
    }
    if (deps.isShuttingDown()) {
      if (header.option === NBD_OPT.NBD_OPT_EXPORT_NAME) return undefined;
      await replyError(NBD_REP.NBD_REP_ERR_SHUTDOWN, 'server is shutting down');
      continue;
    }
    try {
      const outcome = await handleOption(deps, state, header.option, data, reply, replyError);
      if (outcome === 'closed') return undefined;
      if (outcome) return outcome;
    } catch (err) {
      // EXPORT_NAME cannot report errors; any other option gets an error reply and the session goes on.
      if (header.option === NBD_OPT.NBD_OPT_EXPORT_NAME) throw err;
      deps.log.warn({ option: nbdName(NBD_OPT, header.option), err }, 'NBD option failed');
      await replyError(NBD_REP.NBD_REP_ERR_PLATFORM, `option failed: ${errorMessage(err)}`);
    }
  }
}

/** One option after its data was read: a session to enter, 'closed' to hang up, or undefined to go on. */
async function handleOption(
  deps: NegotiationDeps,
  state: State,
  option: number,
  data: Buffer,
  reply: Reply,
  replyError: ReplyError,
): Promise<NegotiatedSession | 'closed' | undefined> {
  switch (option) {
    case NBD_OPT.NBD_OPT_EXPORT_NAME: {
      const name = decodeNbdString(data, 'export name');
      let exp: ResolvedExport;
      try {
        exp = await deps.registry.open(name);
      } catch (err) {
        // EXPORT_NAME has no error reply: the spec's answer is to hang up, so the log says why.
        if (openFailureReply(err) === NBD_REP.NBD_REP_ERR_UNKNOWN) {
          deps.log.info({ export: name, err: errorMessage(err) }, 'NBD client asked for an unknown export; closing');
        } else {
          deps.log.warn(
            { export: name, err },
            'NBD export could not be opened for NBD_OPT_EXPORT_NAME, which cannot carry an error; closing',
          );
        }
        return 'closed';
      }
      await deps.writer.send([encodeExportNameReply(exp.reader.size, exportTransmissionFlags(state.structuredReplies), state.noZeroes)]);
      return session(exp, state);
    }
    case NBD_OPT.NBD_OPT_LIST: {
      if (data.length !== 0) {
        await replyError(NBD_REP.NBD_REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
        break;
      }
      for (const entry of await deps.registry.list()) {
        await reply(NBD_REP.NBD_REP_SERVER, encodeRepServer(entry.name, entry.description));
      }
      await reply(NBD_REP.NBD_REP_ACK);
      break;
    }
    case NBD_OPT.NBD_OPT_INFO:
    case NBD_OPT.NBD_OPT_GO: {
      const exp = await answerInfo(deps, state, option, data, reply, replyError);
      if (exp && option === NBD_OPT.NBD_OPT_GO) return session(exp, state);
      break;
    }
    case NBD_OPT.NBD_OPT_STRUCTURED_REPLY: {
      if (data.length !== 0) await replyError(NBD_REP.NBD_REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
      else if (state.structuredReplies) await replyError(NBD_REP.NBD_REP_ERR_INVALID, 'structured replies already negotiated');
      else {
        state.structuredReplies = true;
        await reply(NBD_REP.NBD_REP_ACK);
      }
      break;
    }
    case NBD_OPT.NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT.NBD_OPT_SET_META_CONTEXT:
      await answerMetaContext(deps, state, option, data, reply, replyError);
      break;
    default:
      // Unknown options (and STARTTLS, EXTENDED_HEADERS, which we do not offer) leave the session usable.
      await replyError(NBD_REP.NBD_REP_ERR_UNSUP, `option ${nbdName(NBD_OPT, option)} is not supported`);
  }
  return undefined;
}

function session(exp: ResolvedExport, state: State): NegotiatedSession {
  // Contexts chosen for another export do not apply to this one (spec: BLOCK_STATUS then fails).
  const contexts = state.selected?.exportName === exp.name ? state.selected.contexts : [];
  return { export: exp, structuredReplies: state.structuredReplies, contexts };
}

type Reply = (type: number, data?: Buffer) => Promise<void>;
type ReplyError = (type: number, message: string) => Promise<void>;

async function openOrAnswer(deps: NegotiationDeps, name: string, replyError: ReplyError): Promise<ResolvedExport | undefined> {
  try {
    return await deps.registry.open(name);
  } catch (err) {
    const type = openFailureReply(err);
    if (type === NBD_REP.NBD_REP_ERR_UNKNOWN) {
      await replyError(type, errorMessage(err));
    } else {
      // The client sees the reason (qemu prints it; libnbd logs it with LIBNBD_DEBUG=1), and so does the log.
      deps.log.warn({ export: name, err }, 'NBD export could not be opened');
      await replyError(type, `export '${name}' cannot be served: ${errorMessage(err)}`);
    }
    return undefined;
  }
}

async function answerInfo(
  deps: NegotiationDeps,
  state: State,
  option: number,
  data: Buffer,
  reply: Reply,
  replyError: ReplyError,
): Promise<ResolvedExport | undefined> {
  let request;
  try {
    request = decodeInfoRequest(data);
  } catch (err) {
    await replyError(NBD_REP.NBD_REP_ERR_INVALID, errorMessage(err));
    return undefined;
  }
  const exp = await openOrAnswer(deps, request.exportName, replyError);
  if (!exp) return undefined;
  const size = exp.reader.size;
  await reply(
    NBD_REP.NBD_REP_INFO,
    encodeRepInfo({ kind: 'export', size, transmissionFlags: exportTransmissionFlags(state.structuredReplies) }),
  );
  if (request.infos.includes(NBD_INFO.NBD_INFO_NAME)) {
    await reply(NBD_REP.NBD_REP_INFO, encodeRepInfo({ kind: 'name', name: exp.name }));
  }
  await reply(NBD_REP.NBD_REP_INFO, encodeRepInfo({ kind: 'description', description: exp.description }));
  await reply(
    NBD_REP.NBD_REP_INFO,
    encodeRepInfo({ kind: 'block-size', minimum: 1, preferred: preferredBlockSize(exp), maximum: deps.maxPayload }),
  );
  await reply(NBD_REP.NBD_REP_ACK);
  deps.log.debug({ option: nbdName(NBD_OPT, option), export: exp.name }, 'NBD export described');
  return exp;
}

/** The chunk size when it is a sane power of two: clients then align requests with chunks. */
function preferredBlockSize(exp: ResolvedExport): number {
  const b = exp.reader.blockSize;
  const powerOfTwo = b > 0 && (b & (b - 1)) === 0;
  return powerOfTwo && b >= 4096 && b <= 2 * 1024 * 1024 ? b : 4096;
}

async function answerMetaContext(
  deps: NegotiationDeps,
  state: State,
  option: number,
  data: Buffer,
  reply: Reply,
  replyError: ReplyError,
): Promise<void> {
  const isSet = option === NBD_OPT.NBD_OPT_SET_META_CONTEXT;
  // SET replaces the previous selection even when it fails.
  if (isSet) state.selected = undefined;
  if (isSet && !state.structuredReplies) {
    await replyError(NBD_REP.NBD_REP_ERR_INVALID, 'NBD_OPT_SET_META_CONTEXT needs structured replies first');
    return;
  }
  let request;
  try {
    request = decodeMetaContextRequest(data);
  } catch (err) {
    await replyError(NBD_REP.NBD_REP_ERR_INVALID, errorMessage(err));
    return;
  }
  if (request.queries.length > MAX_META_CONTEXT_QUERIES) {
    await replyError(NBD_REP.NBD_REP_ERR_TOO_BIG, `at most ${MAX_META_CONTEXT_QUERIES} meta context queries at once`);
    return;
  }
  const exp = await openOrAnswer(deps, request.exportName, replyError);
  if (!exp) return;
  const contexts = await matchMetaContexts(deps.registry, exp, request.queries, isSet ? 'set' : 'list');
  for (const [i, ctx] of contexts.entries()) {
    // LIST answers carry id 0 (spec); SET ids are this connection's own numbering.
    await reply(NBD_REP.NBD_REP_META_CONTEXT, encodeRepMetaContext(isSet ? i + 1 : 0, ctx.name));
  }
  if (isSet) state.selected = { exportName: exp.name, contexts };
  await reply(NBD_REP.NBD_REP_ACK);
}
