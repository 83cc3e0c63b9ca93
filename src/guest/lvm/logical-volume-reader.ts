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
    const runs = this.runs(segment, from, to);
    const answers = await Promise.all(
      runs.map(async (run) => {
        const { target } = run;
        if (target.kind === 'missing') throw this.missing(segment, target);
        const extents = await target.reader.allocation(target.offset + run.start, run.end - run.start);
        return { run, cursor: new ExtentCursor(extents, target.offset) };
      }),
    );
    const byStripe = new Map(answers.map((answer) => [answer.run.firstPiece % n, answer.cursor]));
    const out: AllocationExtent[] = [];
    for (let piece = Math.floor(from / size); piece * size < to; piece++) {
      const cursor = byStripe.get(piece % n) as ExtentCursor;
      const lvFrom = Math.max(from, piece * size);
      const lvTo = Math.min(to, (piece + 1) * size);
      const stripeFrom = Math.floor(piece / n) * size + (lvFrom - piece * size);
      cursor.emit(stripeFrom, stripeFrom + (lvTo - lvFrom), segment.offset + lvFrom - stripeFrom, out);
    }
    return out;
  }
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

  /** Emits stripe range [from, to) shifted by `shift` (stripe offset → LV offset). */
  emit(from: number, to: number, shift: number, out: AllocationExtent[]): void {
    let at = from;
    while (at < to) {
      while (this.index < this.extents.length && this.endOf(this.index) <= at) this.index++;
      const extent = this.extents[this.index];
      const start = extent === undefined ? to : Math.max(at, extent.offset - this.base);
      if (start > at) {
        appendExtent(out, { offset: at + shift, length: Math.min(start, to) - at, zero: false });
        at = Math.min(start, to);
        continue;
      }
      const stop = Math.min(to, this.endOf(this.index));
      appendExtent(out, { offset: at + shift, length: stop - at, zero: (extent as AllocationExtent).zero });
      at = stop;
    }
  }

  private endOf(index: number): number {
    const extent = this.extents[index] as AllocationExtent;
    return extent.offset + extent.length - this.base;
  }
}
