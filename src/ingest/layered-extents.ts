import type { Extent } from '../core/extent.js';
import type { ExtentPlan } from './disk-source.js';
import type { ImageLayer, PieceLoader, PieceReader } from './image-layer.js';

/** A resolved piece of the disk: stored somewhere in the chain, zeros, or taken from the base point. */
type DiskPiece =
  | { kind: 'zero' | 'unchanged'; offset: number; length: number }
  | { kind: 'data'; offset: number; length: number; read: PieceReader; load?: PieceLoader };

/** How much of the disk is mapped per step: large enough that an empty L2 range is one step. */
const MAP_SPAN = 64 * 1024 * 1024;
/** Windows (one chunk each) read at once: reads overlap hashing and compression downstream. */
const READ_AHEAD_WINDOWS = 8;

/**
 * Resolves [offset, offset + length) of `layer` into pieces of the flattened disk. Ranges the top
 * layer does not hold come from the base point when the plan has one (an incremental: the overlay's
 * backing file is the image the base point was made from), otherwise from the layer below, and
 * read as zeros beyond its end.
 */
async function* resolve(layer: ImageLayer, offset: number, length: number, plan: ExtentPlan, isTop: boolean): AsyncGenerator<DiskPiece> {
  for (const piece of await layer.map(offset, length)) {
    if (piece.kind !== 'parent') {
      yield piece as DiskPiece;
      continue;
    }
    if (isTop && plan.hasBase) {
      // Beyond the base disk's end the base reads as zeros: say so, rather than ask the writer to look.
      const limit = Math.max(piece.offset, Math.min(piece.offset + piece.length, plan.baseSize ?? 0));
      if (limit > piece.offset) yield { kind: 'unchanged', offset: piece.offset, length: limit - piece.offset };
      if (limit < piece.offset + piece.length) yield { kind: 'zero', offset: limit, length: piece.offset + piece.length - limit };
      continue;
    }
    const parent = await layer.openParent();
    const inside = Math.max(piece.offset, Math.min(piece.offset + piece.length, parent.size));
    if (inside > piece.offset) yield* resolve(parent, piece.offset, inside - piece.offset, plan, false);
    if (inside < piece.offset + piece.length) yield { kind: 'zero', offset: inside, length: piece.offset + piece.length - inside };
  }
}

/** The disk as pieces in order, adjacent zero or unchanged pieces merged, data cut at chunk boundaries. */
async function* diskPieces(top: ImageLayer, plan: ExtentPlan): AsyncGenerator<DiskPiece> {
  let pending: DiskPiece | undefined;
  for (let offset = 0; offset < top.size; offset += MAP_SPAN) {
    for await (const piece of resolve(top, offset, Math.min(MAP_SPAN, top.size - offset), plan, true)) {
      if (piece.length === 0) continue;
      if (piece.kind !== 'data') {
        if (pending && pending.kind === piece.kind && pending.offset + pending.length === piece.offset) {
          pending.length += piece.length;
          continue;
        }
        if (pending) yield pending;
        pending = { ...piece };
        continue;
      }
      if (pending) yield pending;
      pending = undefined;
      // Cut at chunk boundaries: one read then feeds one chunk.
      for (let done = 0; done < piece.length;) {
        const at = piece.offset + done;
        const take = Math.min(piece.length - done, (Math.floor(at / plan.chunkSize) + 1) * plan.chunkSize - at);
        const skip = done;
        const load = piece.load;
        yield {
          kind: 'data',
          offset: at,
          length: take,
          read: (t, o, s, n) => piece.read(t, o, skip + s, n),
          ...(load ? { load: (s: number, n: number) => load(skip + s, n) } : {}),
        };
        done += take;
      }
    }
  }
  if (pending) yield pending;
}

/** Fills one buffer from consecutive data pieces (they may come from different layers), reads in parallel. */
async function readRun(pieces: DiskPiece[]): Promise<Extent> {
  const first = pieces[0]!;
  // A whole chunk of decoded clusters is used as it is, without copying it into a buffer of its own.
  if (pieces.length === 1 && first.kind === 'data' && first.load)
    return { offset: first.offset, length: first.length, kind: 'data', data: await first.load(0, first.length) };
  const last = pieces[pieces.length - 1]!;
  const length = last.offset + last.length - first.offset;
  const data = Buffer.allocUnsafe(length);
  await Promise.all(
    pieces.map((piece) => (piece.kind === 'data' ? piece.read(data, piece.offset - first.offset, 0, piece.length) : undefined)),
  );
  return { offset: first.offset, length, kind: 'data', data };
}

/**
 * The extent stream of a layered image (qcow2 or VHD, with or without backing chain): data pieces
 * are grouped by chunk and read a few chunks ahead, in disk offset order.
 */
export async function* layeredExtents(top: ImageLayer, plan: ExtentPlan): AsyncIterable<Extent> {
  const queue: Promise<Extent>[] = [];
  let run: DiskPiece[] = [];
  const push = (job: Promise<Extent>) => {
    job.catch(() => undefined);
    queue.push(job);
  };
  const flushRun = () => {
    if (run.length > 0) push(readRun(run));
    run = [];
  };
  for await (const piece of diskPieces(top, plan)) {
    if (piece.kind === 'data') {
      const previous = run[run.length - 1];
      const sameChunk = previous && Math.floor(previous.offset / plan.chunkSize) === Math.floor(piece.offset / plan.chunkSize);
      if (previous && (!sameChunk || previous.offset + previous.length !== piece.offset)) flushRun();
      run.push(piece);
    } else {
      flushRun();
      push(Promise.resolve({ offset: piece.offset, length: piece.length, kind: piece.kind }));
    }
    while (queue.length >= READ_AHEAD_WINDOWS) yield await queue.shift()!;
  }
  flushRun();
  while (queue.length > 0) yield await queue.shift()!;
}
