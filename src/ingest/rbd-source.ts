import { createReadStream } from 'node:fs';
import { CairnError } from '../core/errors.js';
import type { Extent } from '../core/extent.js';
import { RbdStreamDecoder, type RbdEvent } from '../formats/rbd-diff.js';
import type { DiskOrigin } from '../store/manifest.js';
import { ByteStream } from './byte-stream.js';
import type { DiskSource, ExtentPlan } from './disk-source.js';

/** Bytes asked of the stream per read: large pieces keep the per-piece cost down. */
const READ_PIECE = 1024 * 1024;

type DiffEvent = Extract<RbdEvent, { type: 'diff' }>;

/** The snapshots a diff goes between, as the point's origin says them. */
function span(diff: DiffEvent): string {
  return `from ${diff.fromSnap !== undefined ? `snapshot '${diff.fromSnap}'` : 'the image start'} to ${diff.toSnap !== undefined ? `snapshot '${diff.toSnap}'` : 'the image head'}`;
}

/**
 * Checks that a diff from snapshot `fromSnap` applies onto `base`: the base point must have been made
 * up to that snapshot (its recorded toSnap), or the chain would be built on the wrong base.
 */
export function checkDiffBase(fromSnap: string | undefined, where: string, base: { point: string; origin?: DiskOrigin } | undefined): void {
  if (fromSnap === undefined) return;
  if (!base) {
    throw new CairnError(
      'ERR_NOT_FOUND',
      `${where} is a diff from snapshot '${fromSnap}': it needs a base point made up to '${fromSnap}', and there is none (back up the full diff or export first)`,
      { fromSnap },
    );
  }
  const recorded = base.origin?.toSnap;
  if (recorded !== fromSnap) {
    throw new CairnError(
      'ERR_INVALID_ARGUMENT',
      `${where} is a diff from snapshot '${fromSnap}', but base point ${base.point} was made up to ${recorded !== undefined ? `snapshot '${recorded}'` : 'no rbd snapshot'}: refusing to apply it onto the wrong base`,
      { fromSnap, baseToSnap: recorded ?? null, point: base.point },
    );
  }
}

/**
 * An `rbd export-diff` stream (v1 or v2) or an `rbd export --export-format 2` holding one diff, read
 * strictly in order (stdin or a file). `w` records are data, `z` records zeros; the rest of the
 * image is unchanged since the base for a diff from a snapshot, zeros for a diff from the start.
 */
export class RbdStreamSource implements DiskSource {
  private queued: RbdEvent[] = [];

  private constructor(
    private readonly stream: ByteStream,
    private readonly decoder: RbdStreamDecoder,
    private readonly diff: DiffEvent,
    readonly origin: DiskOrigin,
    queued: RbdEvent[],
  ) {
    this.queued = queued;
  }

  /** Reads the stream up to its (first) diff's metadata: size and snapshot names are known before the backup starts. */
  static async open(stream: ByteStream, kind: 'rbd-diff' | 'rbd-export'): Promise<RbdStreamSource> {
    const decoder = new RbdStreamDecoder(kind);
    const queued: RbdEvent[] = [];
    let diff: DiffEvent | undefined;
    let diffCount = 1;
    while (!diff) {
      const piece = await stream.readSome(READ_PIECE);
      if (piece === undefined) decoder.finish();
      for (const event of decoder.push(piece ?? Buffer.alloc(0))) {
        if (event.type === 'image') diffCount = event.diffCount;
        else if (event.type === 'diff' && !diff) diff = event;
        else queued.push(event);
      }
    }
    if (diffCount > 1) {
      throw new CairnError(
        'ERR_UNSUPPORTED',
        `${stream.description} is an rbd export with ${diffCount - 1} snapshot(s): merging its ${diffCount} diffs needs random access; give the export as a file`,
      );
    }
    const version = kind === 'rbd-export' ? 'rbd export v2' : `rbd diff v${diff.version}`;
    const origin: DiskOrigin = {
      format: kind,
      description: `${version} ${span(diff)}, ${diff.size} bytes (${stream.description})`,
      ...(diff.fromSnap !== undefined ? { fromSnap: diff.fromSnap } : {}),
      ...(diff.toSnap !== undefined ? { toSnap: diff.toSnap } : {}),
    };
    return new RbdStreamSource(stream, decoder, diff, origin, queued);
  }

  get description(): string {
    return this.origin.description;
  }

  get size(): number {
    return this.diff.size;
  }

  get needsBase(): boolean {
    return this.diff.fromSnap !== undefined;
  }

  get bytesRead(): number {
    return this.stream.bytesRead;
  }

  checkBase(base: { point: string; origin?: DiskOrigin } | undefined): void {
    checkDiffBase(this.diff.fromSnap, this.stream.description, base);
  }

  private async *events(): AsyncGenerator<RbdEvent> {
    yield* this.queued;
    this.queued = [];
    while (!this.decoder.done) {
      const piece = await this.stream.readSome(READ_PIECE);
      if (piece === undefined) this.decoder.finish();
      yield* this.decoder.push(piece!);
    }
    // Anything after the last record is damage, not padding.
    const extra = await this.stream.readSome(1);
    if (extra !== undefined) this.decoder.push(extra);
  }

  async *extents(plan: ExtentPlan): AsyncIterable<Extent> {
    if (plan.changedBlocks)
      throw new CairnError('ERR_INVALID_ARGUMENT', 'an rbd diff says itself what changed: --changed-blocks does not apply');
    const fromBase = this.diff.fromSnap !== undefined;
    if (fromBase && !plan.hasBase) throw new CairnError('ERR_NOT_FOUND', `a diff from snapshot '${this.diff.fromSnap}' needs a base point`);
    yield* diffExtents(this.events(), this.diff.size, plan, fromBase);
  }

  async close(): Promise<void> {
    this.stream.close();
  }
}

/**
 * Turns one diff's events into extents: data coalesced into chunk-aligned buffers, `z` records as
 * zeros, gaps between records unchanged (a diff from a snapshot; zeros beyond the base's end) or zeros.
 */
export async function* diffExtents(
  events: AsyncIterable<RbdEvent>,
  size: number,
  plan: ExtentPlan,
  fromBase: boolean,
): AsyncGenerator<Extent> {
  const chunkSize = plan.chunkSize;
  let position = 0;
  let buffer: Buffer | undefined;
  let bufferStart = 0;
  let bufferFill = 0;
  const baseEnd = fromBase ? Math.min(size, plan.baseSize ?? 0) : 0;
  function* flush(): Generator<Extent> {
    if (buffer && bufferFill > 0) yield { offset: bufferStart, length: bufferFill, kind: 'data', data: buffer.subarray(0, bufferFill) };
    buffer = undefined;
    bufferFill = 0;
  }
  function* gap(to: number): Generator<Extent> {
    if (to <= position) return;
    const unchangedEnd = Math.max(position, Math.min(to, baseEnd));
    if (unchangedEnd > position) yield { offset: position, length: unchangedEnd - position, kind: 'unchanged' };
    if (to > unchangedEnd) yield { offset: unchangedEnd, length: to - unchangedEnd, kind: 'zero' };
    position = to;
  }
  for await (const event of events) {
    if (event.type === 'zero') {
      yield* flush();
      yield* gap(event.offset);
      yield { offset: event.offset, length: event.length, kind: 'zero' };
      position = event.offset + event.length;
    } else if (event.type === 'data') {
      if (!event.data) throw new Error('rbd stream source: data event without its bytes');
      if (!buffer || event.offset !== bufferStart + bufferFill) {
        yield* flush();
        yield* gap(event.offset);
      }
      let done = 0;
      while (done < event.length) {
        const at = event.offset + done;
        if (!buffer) {
          buffer = Buffer.allocUnsafe(chunkSize - (at % chunkSize));
          bufferStart = at;
        }
        const take = Math.min(event.length - done, buffer.length - bufferFill);
        event.data.copy(buffer, bufferFill, done, done + take);
        bufferFill += take;
        done += take;
        if (bufferFill === buffer.length) yield* flush();
      }
      position = event.offset + event.length;
    } else if (event.type === 'diff-end') {
      break;
    }
  }
  yield* flush();
  yield* gap(size);
}

/** An rbd stream on standard input (or any byte stream). */
export function openRbdStream(stream: ByteStream, kind: 'rbd-diff' | 'rbd-export'): Promise<DiskSource> {
  return RbdStreamSource.open(stream, kind);
}

/**
 * An rbd diff or export in a file: read in order like a stream; an export with several diffs (an
 * image with snapshots) is merged through an index of its records (rbd-export-file.ts).
 */
export async function openRbdFile(path: string, kind: 'rbd-diff' | 'rbd-export'): Promise<DiskSource> {
  if (kind === 'rbd-export') {
    const { RbdExportFileSource } = await import('./rbd-export-file.js');
    const merged = await RbdExportFileSource.openIfSeveral(path);
    if (merged) return merged;
  }
  const input = createReadStream(path, { highWaterMark: READ_PIECE });
  const stream = new ByteStream(input, `file ${path}`, () => input.destroy());
  try {
    return await RbdStreamSource.open(stream, kind);
  } catch (err) {
    stream.close();
    throw err;
  }
}
