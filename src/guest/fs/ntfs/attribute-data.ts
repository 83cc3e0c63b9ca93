import type { GuestFileExtent } from '../../../core/guest-filesystem.js';
import { BoundedCache } from '../../../util/bounded-cache.js';
import { attributeLayout, type AttributeLayout } from './attribute-sizes.js';
import { formatInvalid, recordName, unsupported } from './errors.js';
import { lznt1Decompress } from './lznt1.js';
import { MAX_RUNS } from './mft.js';
import type { NtfsAttribute, NtfsNode } from './node.js';
import { decodeMappingPairs, RunList } from './runlist.js';
import type { VolumeIO } from './volume-io.js';

/** Compression units decoded at once for one read: keeps the volume busy, bounds the memory. */
const UNITS_IN_FLIGHT = 4;

interface MutableExtent {
  offset: number;
  length: number;
  kind: 'data' | 'zero';
  volumeRanges?: { offset: number; length: number }[];
  /** A compressed unit's extent, which never merges with a neighbour. */
  sealed?: boolean;
}

/** An attribute of a node, with the name errors use for it. */
export interface AttributeRef {
  readonly node: NtfsNode;
  readonly attr: NtfsAttribute;
}

/**
 * The values of attributes: resident bytes, runlists (decoded once per attribute, cached), sparse
 * runs and the part past the initialized size as zeros, and LZNT1 compression units decoded one
 * unit at a time (cached, so that small reads of one unit decode it once).
 */
export class AttributeData {
  private readonly runlists: BoundedCache<string, RunList>;
  private readonly units: BoundedCache<string, Buffer>;

  constructor(
    private readonly io: VolumeIO,
    cacheBytes: number,
  ) {
    this.runlists = new BoundedCache(Math.floor((cacheBytes * 3) / 4), (r) => r.footprint);
    this.units = new BoundedCache(Math.floor(cacheBytes / 4), (b) => b.length + 64);
  }

  where(ref: AttributeRef): string {
    const { node, attr } = ref;
    return `${recordName(node.record)} attribute 0x${attr.type.toString(16)}${attr.name ? ` '${attr.name}'` : ''}`;
  }

  layout(ref: AttributeRef): AttributeLayout {
    return attributeLayout(ref.attr, this.io.clusterSize, this.io.clusterCount, this.io.name, this.where(ref), (feature, detail) =>
      unsupported(this.io.name, feature, detail, { record: ref.node.record }),
    );
  }

  /** The runlist of a non-resident attribute: every extent's mapping pairs, checked and joined. */
  runs(ref: AttributeRef): Promise<RunList> {
    const { node, attr } = ref;
    return this.runlists.get(`${node.record}:${attr.type}:${attr.name}`, async () => {
      const runs = new RunList(
        Math.min(
          1024,
          attr.extents.reduce((n, e) => n + e.mappingPairs.length, 0),
        ),
      );
      for (const e of attr.extents) {
        const limits = { lowestVcn: e.lowestVcn, highestVcn: e.highestVcn, clusterCount: this.io.clusterCount, maxRuns: MAX_RUNS };
        const problem = decodeMappingPairs(e.mappingPairs, 0, e.mappingPairs.length, limits, runs);
        if (problem) throw formatInvalid(this.io.name, `${this.where(ref)} (in ${recordName(e.record)})`, problem, { record: node.record });
      }
      return runs;
    });
  }

  /** Bytes [offset, offset+length) of the value, clipped to its size. */
  async read(ref: AttributeRef, offset: number, length: number): Promise<Buffer> {
    const layout = this.layout(ref);
    this.refuseEncrypted(ref, layout);
    const end = Math.min(offset + length, layout.dataSize);
    if (end <= offset) return Buffer.alloc(0);
    if (layout.resident) return Buffer.from(ref.attr.resident!.value.subarray(offset, end));
    const out = Buffer.allocUnsafe(end - offset);
    const initEnd = Math.max(offset, Math.min(end, layout.initializedSize));
    out.fill(0, initEnd - offset);
    if (initEnd > offset) {
      const runs = await this.runs(ref);
      if (layout.compressionUnitSize === 0) await this.io.readRuns(runs, offset, out.subarray(0, initEnd - offset), this.where(ref));
      else await this.readCompressed(ref, runs, layout, offset, out.subarray(0, initEnd - offset));
    }
    return out;
  }

  /** Data and zero pieces of [offset, offset+length), clipped to the size, with their volume ranges. */
  async extents(ref: AttributeRef, offset: number, length: number): Promise<GuestFileExtent[]> {
    const layout = this.layout(ref);
    this.refuseEncrypted(ref, layout);
    const end = Math.min(offset + length, layout.dataSize);
    if (end <= offset) return [];
    if (layout.resident) return [{ offset, length: end - offset, kind: 'data' }];
    const out: MutableExtent[] = [];
    const initEnd = Math.max(offset, Math.min(end, layout.initializedSize));
    if (initEnd > offset) {
      const runs = await this.runs(ref);
      if (layout.compressionUnitSize === 0) this.plainExtents(ref, runs, offset, initEnd, out);
      else this.compressedExtents(ref, runs, layout.compressionUnitSize, offset, initEnd, out);
    }
    if (end > initEnd) add(out, { offset: initEnd, length: end - initEnd, kind: 'zero' });
    return finish(out);
  }

  private refuseEncrypted(ref: AttributeRef, layout: AttributeLayout): void {
    if (layout.encrypted) {
      throw unsupported(this.io.name, 'encryption (EFS)', `${this.where(ref)} is encrypted; its key is not on the volume`, {
        record: ref.node.record,
      });
    }
  }

  private plainExtents(ref: AttributeRef, runs: RunList, from: number, to: number, out: MutableExtent[]): void {
    for (const p of this.io.plan(runs, from, to - from, this.where(ref))) {
      const offset = from + p.at;
      if (p.volumeOffset < 0) add(out, { offset, length: p.length, kind: 'zero' });
      else add(out, { offset, length: p.length, kind: 'data', volumeRanges: [{ offset: p.volumeOffset, length: p.length }] });
    }
  }

  /**
   * A compression unit whose first cluster is sparse is a hole; one with every cluster allocated is
   * stored as is; any other holds LZNT1 in its allocated clusters (compress.c ntfs_is_cb_compressed).
   * A compressed unit is one extent whose volume ranges are its stored clusters, never merged with
   * a neighbour: the ranges name what the bytes are decoded from only unit by unit.
   */
  private compressedExtents(ref: AttributeRef, runs: RunList, unitSize: number, from: number, to: number, out: MutableExtent[]): void {
    const where = this.where(ref);
    for (let unitStart = Math.floor(from / unitSize) * unitSize; unitStart < to; unitStart += unitSize) {
      const a = Math.max(from, unitStart);
      const b = Math.min(to, unitStart + unitSize);
      const pieces = this.io.plan(runs, unitStart, unitSize, where);
      const kind = unitKind(pieces);
      if (kind === 'sparse') add(out, { offset: a, length: b - a, kind: 'zero' });
      else if (kind === 'stored') this.plainExtents(ref, runs, a, b, out);
      else {
        const volumeRanges = pieces.filter((p) => p.volumeOffset >= 0).map((p) => ({ offset: p.volumeOffset, length: p.length }));
        add(out, { offset: a, length: b - a, kind: 'data', volumeRanges, sealed: true });
      }
    }
  }

  private async readCompressed(ref: AttributeRef, runs: RunList, layout: AttributeLayout, offset: number, target: Buffer): Promise<void> {
    const unitSize = layout.compressionUnitSize;
    const end = offset + target.length;
    const jobs: (() => Promise<void>)[] = [];
    for (let unitStart = Math.floor(offset / unitSize) * unitSize; unitStart < end; unitStart += unitSize) {
      const a = Math.max(offset, unitStart);
      const b = Math.min(end, unitStart + unitSize);
      const view = target.subarray(a - offset, b - offset);
      jobs.push(async () => {
        const pieces = this.io.plan(runs, unitStart, unitSize, this.where(ref));
        const kind = unitKind(pieces);
        if (kind === 'sparse') view.fill(0);
        else if (kind === 'stored') await this.io.readRuns(runs, a, view, this.where(ref));
        else (await this.decodedUnit(ref, runs, unitStart, unitSize)).copy(view, 0, a - unitStart, b - unitStart);
      });
    }
    for (let i = 0; i < jobs.length; i += UNITS_IN_FLIGHT) {
      await Promise.all(jobs.slice(i, i + UNITS_IN_FLIGHT).map((job) => job()));
    }
  }

  private decodedUnit(ref: AttributeRef, runs: RunList, unitStart: number, unitSize: number): Promise<Buffer> {
    return this.units.get(`${ref.node.record}:${ref.attr.type}:${ref.attr.name}:${unitStart}`, async () => {
      const stored = Buffer.allocUnsafe(unitSize);
      await this.io.readRuns(runs, unitStart, stored, this.where(ref));
      const decoded = Buffer.allocUnsafe(unitSize);
      const problem = lznt1Decompress(stored, decoded);
      if (problem) {
        throw formatInvalid(this.io.name, `${this.where(ref)} compression unit at byte ${unitStart}`, `LZNT1: ${problem}`, {
          record: ref.node.record,
        });
      }
      return decoded;
    });
  }
}

function unitKind(pieces: readonly { volumeOffset: number }[]): 'sparse' | 'stored' | 'compressed' {
  if (pieces[0]!.volumeOffset < 0) return 'sparse';
  return pieces.every((p) => p.volumeOffset >= 0) ? 'stored' : 'compressed';
}

/**
 * Appends a piece, merging it into the last one when both are zeros or both plain data (adjacent
 * volume ranges join). A compressed unit's extent is sealed: its ranges name what it is decoded
 * from only as a whole, so it never merges.
 */
function add(out: MutableExtent[], piece: MutableExtent): void {
  const last = out[out.length - 1];
  if (last && !last.sealed && !piece.sealed && last.offset + last.length === piece.offset && last.kind === piece.kind) {
    last.length += piece.length;
    for (const r of piece.volumeRanges ?? []) {
      const lastRange = last.volumeRanges![last.volumeRanges!.length - 1]!;
      if (lastRange.offset + lastRange.length === r.offset) lastRange.length += r.length;
      else last.volumeRanges!.push({ ...r });
    }
    return;
  }
  out.push(piece.volumeRanges ? { ...piece, volumeRanges: piece.volumeRanges.map((r) => ({ ...r })) } : { ...piece });
}

function finish(out: readonly MutableExtent[]): GuestFileExtent[] {
  return out.map((e) =>
    e.volumeRanges
      ? { offset: e.offset, length: e.length, kind: e.kind, volumeRanges: e.volumeRanges }
      : { offset: e.offset, length: e.length, kind: e.kind },
  );
}
