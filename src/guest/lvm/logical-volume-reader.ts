import type { BlockReader } from '../../core/block-reader.js';
import { CairnError } from '../../core/errors.js';
import type { AllocationExtent } from '../../core/extent.js';

/** Where one stripe (or the one area of a linear segment) of a segment lies. */
export type StripeTarget =
  | { readonly kind: 'reader'; readonly reader: BlockReader; readonly offset: number }
  /** The PV is not among the disks given: reading the stripe fails with an error naming it. */
  | { readonly kind: 'missing'; readonly volume: string; readonly reason: string };

/**
 * One segment of an LV in bytes: `length` bytes at LV offset `offset`, dealt round-robin over the
 * stripes in `stripeSize` pieces (device-mapper's `striped` target: piece c goes to stripe c mod N at
 * row c div N). A linear segment is one stripe whose `stripeSize` is the segment's length.
 */
export interface MappedSegment {
  readonly offset: number;
  readonly length: number;
  readonly kind: 'striped' | 'zero';
  readonly stripeSize: number;
  readonly stripes: readonly StripeTarget[];
}

/** One stripe's share of a read: a contiguous run on the stripe, scattered over the LV range. */
interface StripeRun {
  readonly target: StripeTarget;
  /** Byte range on the stripe, relative to the stripe's start. */
  readonly start: number;
  readonly end: number;
  /** Segment-relative piece indexes c0, c0+N, …, c1 that the run holds. */
  readonly firstPiece: number;
  readonly lastPiece: number;
}

/**
 * Serves one LVM logical volume as a disk: reads and allocation queries are split at segment and
 * stripe boundaries and passed to the PV readers, so holes in the PVs stay holes in the LV. Built by
 * the VG assembly from checked metadata; the mapping is immutable.
 */
export class LogicalVolumeReader implements BlockReader {
  readonly blockSize: number;

  constructor(
    /** `VG/LV`, for messages. */
    readonly name: string,
    readonly size: number,
    blockSize: number,
    private readonly segments: readonly MappedSegment[],
  ) {
    this.blockSize = blockSize;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const target = Buffer.allocUnsafe(length >= 0 && Number.isSafeInteger(length) && length <= this.size ? length : 0);
    await this.readInto(offset, length, target);
    return target;
  }

  async readInto(offset: number, length: number, target: Buffer): Promise<void> {
    this.check(offset, length);
    if (target.length < length) throw new CairnError('ERR_INVALID_ARGUMENT', `target of ${target.length} bytes for a read of ${length}`);
    const work: Promise<void>[] = [];
    this.forEachPiece(offset, length, (segment, from, to) => {
      const out = target.subarray(segment.offset + from - offset, segment.offset + to - offset);
      if (segment.kind === 'zero') out.fill(0);
      else work.push(this.readSegment(segment, from, to, out));
    });
    await Promise.all(work);
  }

  async allocation(offset: number, length: number): Promise<AllocationExtent[]> {
    this.check(offset, length);
    const parts: Promise<AllocationExtent[]>[] = [];
    this.forEachPiece(offset, length, (segment, from, to) => {
      if (segment.kind === 'zero') parts.push(Promise.resolve([{ offset: segment.offset + from, length: to - from, zero: true }]));
      else parts.push(this.allocateSegment(segment, from, to));
    });
    const merged: AllocationExtent[] = [];
    for (const extents of await Promise.all(parts)) for (const extent of extents) appendExtent(merged, extent);
    return merged;
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new CairnError('ERR_OUT_OF_RANGE', `read ${offset}+${length} is outside LV ${this.name} (${this.size} bytes)`, {
        offset,
        length,
        size: this.size,
      });
    }
  }

  /** Calls `visit` with each segment that [offset, offset+length) touches and the segment-relative range. */
  private forEachPiece(offset: number, length: number, visit: (segment: MappedSegment, from: number, to: number) => void): void {
    const end = offset + length;
    for (let index = this.segmentAt(offset); index < this.segments.length && offset < end; index++) {
      const segment = this.segments[index] as MappedSegment;
      const from = Math.max(offset, segment.offset) - segment.offset;
      const to = Math.min(end, segment.offset + segment.length) - segment.offset;
      if (to > from) visit(segment, from, to);
    }
  }

  private segmentAt(offset: number): number {
    let low = 0;
    let high = this.segments.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      if ((this.segments[mid] as MappedSegment).offset <= offset) low = mid;
      else high = mid - 1;
    }
    return low;
  }

  /** The runs that [from, to) of a segment needs, one per stripe touched (at most N reads). */
  private runs(segment: MappedSegment, from: number, to: number): StripeRun[] {
    const n = segment.stripes.length;
    const size = segment.stripeSize;
    const first = Math.floor(from / size);
    const last = Math.floor((to - 1) / size);
    const runs: StripeRun[] = [];
    for (let stripe = 0; stripe < n; stripe++) {
      const firstPiece = first + ((((stripe - first) % n) + n) % n);
      if (firstPiece > last) continue;
      const lastPiece = last - ((((last - stripe) % n) + n) % n);
      const target = segment.stripes[stripe] as StripeTarget;
      const start = Math.floor(firstPiece / n) * size + (Math.max(from, firstPiece * size) - firstPiece * size);
      const end = Math.floor(lastPiece / n) * size + (Math.min(to, (lastPiece + 1) * size) - lastPiece * size);
      runs.push({ target, start, end, firstPiece, lastPiece });
    }
    return runs;
  }

  private missing(segment: MappedSegment, target: Extract<StripeTarget, { kind: 'missing' }>): CairnError {
    return new CairnError(
      'ERR_NOT_FOUND',
      `LV ${this.name}: bytes ${segment.offset}–${segment.offset + segment.length} lie on PV ${target.volume}, ${target.reason}`,
      { lv: this.name, volume: target.volume, offset: segment.offset, length: segment.length },
    );
  }

  private async readSegment(segment: MappedSegment, from: number, to: number, out: Buffer): Promise<void> {
    const n = segment.stripes.length;
    const size = segment.stripeSize;
    await Promise.all(
      this.runs(segment, from, to).map(async (run) => {
        const { target } = run;
        if (target.kind === 'missing') throw this.missing(segment, target);
        if (n === 1) return readFrom(target.reader, target.offset + run.start, run.end - run.start, out);
        const bytes = await target.reader.read(target.offset + run.start, run.end - run.start);
        for (let piece = run.firstPiece; piece <= run.lastPiece; piece += n) {
          const lvFrom = Math.max(from, piece * size);
          const lvTo = Math.min(to, (piece + 1) * size);
          const at = Math.floor(piece / n) * size + (lvFrom - piece * size) - run.start;
          bytes.copy(out, lvFrom - from, at, at + (lvTo - lvFrom));
        }
      }),
    );
  }

  private async allocateSegment(segment: MappedSegment, from: number, to: number): Promise<AllocationExtent[]> {
    const n = segment.stripes.length;
    const size = segment.stripeSize;
    const cursors: ExtentCursor[] = new Array<ExtentCursor>(n);
    await Promise.all(
      this.runs(segment, from, to).map(async (run) => {
        const { target } = run;
        if (target.kind === 'missing') throw this.missing(segment, target);
        const extents = await target.reader.allocation(target.offset + run.start, run.end - run.start);
        cursors[run.firstPiece % n] = new ExtentCursor(extents, target.offset);
      }),
    );
    const out: AllocationExtent[] = [];
    const row = n * size;
    let budget = MAX_EXACT_PIECES;
    for (let at = from; at < to;) {
      const rows = at % row === 0 ? Math.floor((to - at) / row) : 0;
      const run = rows > 0 ? uniformRows(cursors, at / row, rows, size) : undefined;
      if (run && (run.zero !== undefined || run.rows * n > budget)) {
        // Whole rows where every stripe keeps one kind: one extent, not one per piece. Where the
        // stripes disagree over many rows the exact answer would be a piece-by-piece comb; data is
        // the safe coarse answer (a reader then reads the zeros instead of skipping them).
        appendExtent(out, { offset: segment.offset + at, length: run.rows * row, zero: run.zero ?? false });
        at += run.rows * row;
        continue;
      }
      const piece = Math.floor(at / size);
      const end = Math.min(to, (piece + 1) * size);
      const stripeFrom = Math.floor(piece / n) * size + (at - piece * size);
      (cursors[piece % n] as ExtentCursor).emit(stripeFrom, stripeFrom + (end - at), segment.offset + at - stripeFrom, out);
      budget--;
      at = end;
    }
    return out;
  }
}

/** Pieces a striped allocation answer describes one by one before it coarsens (bounds time and size). */
const MAX_EXACT_PIECES = 65_536;

/**
 * How many of the `rows` whole rows from `firstRow` every stripe answers with one kind (at least
 * one row), and that kind when all stripes agree; undefined when a stripe changes kind inside the
 * first row.
 */
function uniformRows(
  cursors: readonly ExtentCursor[],
  firstRow: number,
  rows: number,
  size: number,
): { rows: number; zero?: boolean } | undefined {
  let count = rows;
  let kind: boolean | undefined;
  let agree = true;
  for (const cursor of cursors) {
    const span = cursor.spanAt(firstRow * size);
    const whole = Math.floor((span.end - firstRow * size) / size);
    if (whole < 1) return undefined;
    count = Math.min(count, whole);
    if (kind === undefined) kind = span.zero;
    else if (kind !== span.zero) agree = false;
  }
  return { rows: count, zero: agree ? kind : undefined };
}

/** Reads into `out` through the reader's own readInto when it has one (one copy fewer). */
async function readFrom(reader: BlockReader, offset: number, length: number, out: Buffer): Promise<void> {
  const target = out.subarray(0, length);
  if (reader.readInto) return reader.readInto(offset, length, target);
  const bytes = await reader.read(offset, length);
  bytes.copy(target, 0, 0, length);
}

function appendExtent(out: AllocationExtent[], extent: AllocationExtent): void {
  if (extent.length <= 0) return;
  const last = out[out.length - 1];
  if (last && last.zero === extent.zero && last.offset + last.length === extent.offset) last.length += extent.length;
  else out.push({ ...extent });
}

/**
 * Walks a PV reader's allocation answer for one stripe in increasing order. Ranges the answer does
 * not cover are reported as data: claiming zeros the reader did not promise could lose data.
 */
class ExtentCursor {
  private index = 0;

  constructor(
    private readonly extents: readonly AllocationExtent[],
    /** Offset of the stripe's start in the reader's address space. */
    private readonly base: number,
  ) {}

  /** The kind at stripe position `at` and where it stops (positions only ever increase). */
  spanAt(at: number): { zero: boolean; end: number } {
    while (this.index < this.extents.length && this.endOf(this.index) <= at) this.index++;
    const extent = this.extents[this.index];
    if (extent === undefined) return { zero: false, end: Number.MAX_SAFE_INTEGER };
    const start = extent.offset - this.base;
    if (start > at) return { zero: false, end: start };
    return { zero: extent.zero, end: this.endOf(this.index) };
  }

  /** Emits stripe range [from, to) shifted by `shift` (stripe offset → LV offset). */
  emit(from: number, to: number, shift: number, out: AllocationExtent[]): void {
    for (let at = from; at < to;) {
      const span = this.spanAt(at);
      const stop = Math.min(to, span.end);
      appendExtent(out, { offset: at + shift, length: stop - at, zero: span.zero });
      at = stop;
    }
  }

  private endOf(index: number): number {
    const extent = this.extents[index] as AllocationExtent;
    return extent.offset + extent.length - this.base;
  }
}
