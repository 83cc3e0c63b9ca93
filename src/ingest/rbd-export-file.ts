import { CairnError } from '../core/errors.js';
import type { Extent } from '../core/extent.js';
import { RbdStreamDecoder, type RbdEvent } from '../formats/rbd-diff.js';
import type { DiskOrigin } from '../store/manifest.js';
import type { DiskSource, ExtentPlan } from './disk-source.js';
import { ImageFile } from './image-file.js';
import type { ImageLayer, LayerPiece } from './image-layer.js';
import { layeredExtents } from './layered-extents.js';

/** Header bytes read per step of the indexing pass; data payloads are skipped, not read. */
const INDEX_READ = 256 * 1024;
/**
 * Extents kept in the merged index (about 60 bytes each, so at most ~250 MiB): a 16 TiB image of
 * 4 MiB objects has 4M objects; beyond that the export is refused rather than indexed.
 */
const MAX_SEGMENTS = 4 * 1024 * 1024;

/** A range of the final image: stored at `position` in the file (a `w` record), or zeros (a `z` record). */
interface Segment {
  offset: number;
  length: number;
  position: number | undefined;
}

function slice(segment: Segment, from: number, to: number): Segment {
  return {
    offset: from,
    length: to - from,
    position: segment.position === undefined ? undefined : segment.position + (from - segment.offset),
  };
}

/** `upper` (one diff's records, in order) laid over `lower` (the image so far): both sorted, non-overlapping. */
export function overlaySegments(lower: readonly Segment[], upper: readonly Segment[]): Segment[] {
  const rest = [...lower];
  const out: Segment[] = [];
  let i = 0;
  for (const top of upper) {
    const topEnd = top.offset + top.length;
    while (i < rest.length && rest[i]!.offset + rest[i]!.length <= top.offset) out.push(rest[i++]!);
    if (i < rest.length && rest[i]!.offset < top.offset) out.push(slice(rest[i]!, rest[i]!.offset, top.offset));
    out.push(top);
    while (i < rest.length && rest[i]!.offset + rest[i]!.length <= topEnd) i++;
    if (i < rest.length && rest[i]!.offset < topEnd) rest[i] = slice(rest[i]!, topEnd, rest[i]!.offset + rest[i]!.length);
  }
  while (i < rest.length) out.push(rest[i++]!);
  return out;
}

/** The image cut to `size` (a shrink between snapshots discards what lay beyond). */
export function truncateSegments(segments: Segment[], size: number): Segment[] {
  const out: Segment[] = [];
  for (const segment of segments) {
    if (segment.offset >= size) break;
    out.push(segment.offset + segment.length > size ? slice(segment, segment.offset, size) : segment);
  }
  return out;
}

/** The merged image as a layer: binary search over its segments, data read from the export file. */
class MergedLayer implements ImageLayer {
  readonly hasParent = false;

  constructor(
    private readonly file: ImageFile,
    private readonly segments: Segment[],
    readonly size: number,
    readonly description: string,
  ) {}

  get path(): string {
    return this.file.path;
  }

  get bytesRead(): number {
    return this.file.bytesRead;
  }

  async map(offset: number, length: number): Promise<LayerPiece[]> {
    const end = offset + length;
    let low = 0;
    let high = this.segments.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      const s = this.segments[mid]!;
      if (s.offset + s.length <= offset) low = mid + 1;
      else high = mid;
    }
    const pieces: LayerPiece[] = [];
    let at = offset;
    for (let i = low; i < this.segments.length && at < end; i++) {
      const s = this.segments[i]!;
      if (s.offset >= end) break;
      if (s.offset > at) pieces.push({ kind: 'zero', offset: at, length: s.offset - at });
      const from = Math.max(at, s.offset);
      const to = Math.min(end, s.offset + s.length);
      if (s.position === undefined) pieces.push({ kind: 'zero', offset: from, length: to - from });
      else {
        const host = s.position + (from - s.offset);
        pieces.push({
          kind: 'data',
          offset: from,
          length: to - from,
          read: (t, o, skip, n) => this.file.readInto(t, o, host + skip, n, 'rbd export data'),
        });
      }
      at = to;
    }
    if (at < end) pieces.push({ kind: 'zero', offset: at, length: end - at });
    return pieces;
  }

  openParent(): Promise<ImageLayer> {
    throw new Error('a merged rbd export has no parent');
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

/**
 * An `rbd export --export-format 2` file of an image with snapshots: its diffs (nothing→snap1, …,
 * →head) are indexed in one pass that reads record headers and skips the data, merged into the
 * final image, and read back in offset order.
 */
export class RbdExportFileSource implements DiskSource {
  private constructor(
    private readonly layer: MergedLayer,
    readonly origin: DiskOrigin,
  ) {}

  /** The merged source, or undefined when the export holds a single diff (read it as a stream). */
  static async openIfSeveral(path: string): Promise<RbdExportFileSource | undefined> {
    const file = await ImageFile.open(path, 'rbd export');
    try {
      const decoder = new RbdStreamDecoder('rbd-export');
      let image: Segment[] = [];
      let records: Segment[] = [];
      let size = 0;
      let diffCount = 0;
      let last: Extract<RbdEvent, { type: 'diff' }> | undefined;
      const take = (events: RbdEvent[]) => {
        for (const event of events) {
          if (event.type === 'image') diffCount = event.diffCount;
          else if (event.type === 'diff') {
            last = event;
            size = event.size;
            records = [];
          } else if (event.type === 'data' || event.type === 'zero') {
            const position = event.type === 'data' ? event.position : undefined;
            const previous = records[records.length - 1];
            if (
              previous &&
              previous.offset + previous.length === event.offset &&
              (position === undefined
                ? previous.position === undefined
                : previous.position !== undefined && previous.position + previous.length === position)
            ) {
              previous.length += event.length;
            } else records.push({ offset: event.offset, length: event.length, position });
          } else if (event.type === 'diff-end') {
            image = overlaySegments(truncateSegments(image, size), records);
            if (image.length > MAX_SEGMENTS)
              throw new CairnError('ERR_UNSUPPORTED', `rbd export ${path} has more than ${MAX_SEGMENTS} extents`);
            records = [];
          }
        }
      };
      while (!decoder.done) {
        if (decoder.payloadRemaining > 0) {
          // Data stays in the file: the read pass fetches it by position.
          const count = Math.min(decoder.payloadRemaining, file.size - decoder.position);
          if (count <= 0) decoder.finish();
          take(decoder.skip(count));
          continue;
        }
        const at = decoder.position;
        if (at >= file.size) decoder.finish();
        take(decoder.push(await file.read(at, Math.min(INDEX_READ, file.size - at), 'rbd export records')));
        if (diffCount === 1) {
          await file.close();
          return undefined;
        }
      }
      const snaps = `${diffCount - 1} snapshot(s), up to ${last!.toSnap !== undefined ? `snapshot '${last!.toSnap}'` : 'the image head'}`;
      const description = `rbd export v2 with ${snaps}, ${size} bytes (file ${path})`;
      const origin: DiskOrigin = { format: 'rbd-export', description, ...(last!.toSnap !== undefined ? { toSnap: last!.toSnap } : {}) };
      return new RbdExportFileSource(new MergedLayer(file, image, size, description), origin);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  get description(): string {
    return this.layer.description;
  }

  get size(): number {
    return this.layer.size;
  }

  get bytesRead(): number {
    return this.layer.bytesRead;
  }

  extents(plan: ExtentPlan): AsyncIterable<Extent> {
    // A full image: nothing comes from the base, whatever the plan has.
    return layeredExtents(this.layer, { ...plan, hasBase: false });
  }

  close(): Promise<void> {
    return this.layer.close();
  }
}
