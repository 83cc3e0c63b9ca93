import type { BlockReader } from '../../core/block-reader.js';
import { CairnError, isCairnError } from '../../core/errors.js';
import { LVM_SECTOR_SIZE } from './layout.js';
import { LogicalVolumeReader, type MappedSegment, type StripeTarget } from './logical-volume-reader.js';
import type { LvEntry, LvSegment, VgMetadata } from './vg-metadata.js';

/** How the VG assembly resolved one PV of the metadata. */
export type PvPlacement =
  | { readonly kind: 'found'; readonly reader: BlockReader; readonly candidate: string }
  | { readonly kind: 'missing'; readonly reason: string };

/** Segment types served; everything else (thin, raid*, mirror, cache, vdo, writecache…) is refused. */
const SUPPORTED_TYPES: ReadonlySet<string> = new Set(['striped', 'linear', 'zero']);
/** LVs stacked on LVs (a pvmove, a converted LV): lvm nests a level or two; a loop is damage. */
const MAX_LV_NESTING = 8;
const DEFAULT_BLOCK_SIZE = 64 * 1024;

/**
 * Turns checked metadata into byte mappings, one per LV, or the error that explains why an LV cannot
 * be read. Checks what the text parser cannot: segments that leave gaps or overlap, areas beyond their
 * PV (or past the end of the disk it was found on), extents claimed by two LVs, sizes beyond 2^53,
 * LVs stacked in a loop. Each failure names the VG and the LV and spoils only the LVs involved.
 */
export class LvMapper {
  private readonly extentSize: number;
  private readonly lvs: ReadonlyMap<string, LvEntry>;
  private readonly pvs: ReadonlyMap<string, { peStart: number; peCount: number; placement: PvPlacement; label: string }>;
  private readonly results = new Map<string, LogicalVolumeReader | CairnError>();
  private readonly resolving = new Set<string>();
  private readonly overlapProblems: ReadonlyMap<string, CairnError>;
  private readonly cowStores: ReadonlySet<string>;
  private readonly blockSize: number;

  constructor(
    private readonly vg: VgMetadata,
    placements: ReadonlyMap<string, PvPlacement>,
  ) {
    this.extentSize = vg.extentSizeSectors * LVM_SECTOR_SIZE;
    this.lvs = new Map(vg.logicalVolumes.map((lv) => [lv.name, lv]));
    this.pvs = new Map(
      vg.physicalVolumes.map((pv) => [
        pv.name,
        {
          peStart: pv.peStartSectors * LVM_SECTOR_SIZE,
          peCount: pv.peCount,
          placement: placements.get(pv.name) ?? { kind: 'missing', reason: 'not resolved' },
          label: `${pv.name} (UUID ${pv.uuid})`,
        },
      ]),
    );
    const readers = [...placements.values()].flatMap((p) => (p.kind === 'found' ? [p.reader.blockSize] : []));
    this.blockSize = readers[0] ?? DEFAULT_BLOCK_SIZE;
    this.overlapProblems = this.findSharedExtents();
    this.cowStores = new Set(vg.logicalVolumes.flatMap((lv) => lv.segments.flatMap((seg) => (seg.cowStore ? [seg.cowStore] : []))));
  }

  /** The reader of LV `name`, or the error that says why it cannot be read. */
  resolve(name: string): LogicalVolumeReader | CairnError {
    const cached = this.results.get(name);
    if (cached) return cached;
    let result: LogicalVolumeReader | CairnError;
    try {
      result = this.build(name);
    } catch (err) {
      if (!isCairnError(err)) throw err;
      result = err;
    }
    this.results.set(name, result);
    return result;
  }

  /** LV size in bytes from its extents (0 when the extents cannot be counted). */
  sizeOf(lv: LvEntry): number {
    const extents = lv.segments.reduce((sum, seg) => sum + seg.extentCount, 0);
    const size = extents * this.extentSize;
    return Number.isSafeInteger(size) ? size : 0;
  }

  /** PVs an LV's segments (directly) lie on that are not among the disks. */
  missingPvsOf(lv: LvEntry): string[] {
    const names = new Set(lv.segments.flatMap((seg) => seg.areas.filter((a) => a.kind === 'pv').map((a) => a.name)));
    return [...names].flatMap((name) => {
      const pv = this.pvs.get(name);
      return pv && pv.placement.kind !== 'found' ? [pv.label] : [];
    });
  }

  private where(lv: string): string {
    return `VG ${this.vg.name}: LV ${lv}`;
  }

  private invalid(lv: string, why: string, context: Record<string, unknown> = {}): never {
    throw new CairnError('ERR_FORMAT_INVALID', `LVM metadata: ${this.where(lv)}: ${why}`, { vg: this.vg.name, lv, ...context });
  }

  private build(name: string): LogicalVolumeReader {
    const lv = this.lvs.get(name);
    if (!lv) return this.invalid(name, 'no such LV');
    if (lv.problem) throw lv.problem;
    const overlap = this.overlapProblems.get(name);
    if (overlap) throw overlap;
    if (this.cowStores.has(name)) {
      throw new CairnError(
        'ERR_UNSUPPORTED',
        `${this.where(name)} is a snapshot (copy-on-write store); Cairn reads linear and striped LVs only`,
        {
          vg: this.vg.name,
          lv: name,
          segmentType: 'snapshot',
        },
      );
    }
    const unsupported = lv.segments.find((seg) => !SUPPORTED_TYPES.has(seg.type));
    if (unsupported) {
      throw new CairnError(
        'ERR_UNSUPPORTED',
        `${this.where(name)} has segment type "${unsupported.type}"; Cairn reads linear and striped LVs only`,
        { vg: this.vg.name, lv: name, segmentType: unsupported.type },
      );
    }
    if (this.resolving.size >= MAX_LV_NESTING) this.invalid(name, `LVs stacked more than ${MAX_LV_NESTING} deep`);
    this.resolving.add(name);
    try {
      const segments: MappedSegment[] = [];
      let nextExtent = 0;
      for (const seg of lv.segments) {
        if (seg.startExtent !== nextExtent) {
          this.invalid(name, `${seg.name} starts at extent ${seg.startExtent}, expected ${nextExtent} (segments overlap or leave a gap)`);
        }
        nextExtent += seg.extentCount;
        segments.push(this.mapSegment(name, seg));
      }
      const size = nextExtent * this.extentSize;
      if (!Number.isSafeInteger(size)) this.invalid(name, `${nextExtent} extents exceed 2^53 bytes`);
      return new LogicalVolumeReader(`${this.vg.name}/${name}`, size, this.blockSize, segments);
    } finally {
      this.resolving.delete(name);
    }
  }

  private mapSegment(lvName: string, seg: LvSegment): MappedSegment {
    const offset = seg.startExtent * this.extentSize;
    const length = seg.extentCount * this.extentSize;
    if (!Number.isSafeInteger(offset + length)) this.invalid(lvName, `${seg.name} ends beyond 2^53 bytes`);
    if (seg.type === 'zero') return { offset, length, kind: 'zero', stripeSize: length, stripes: [] };
    const stripeCount = seg.stripeCount ?? 1;
    const areaExtents = seg.extentCount / stripeCount;
    const areaLength = areaExtents * this.extentSize;
    let stripeSize = length;
    if (stripeCount > 1) {
      stripeSize = (seg.stripeSizeSectors ?? 0) * LVM_SECTOR_SIZE;
      // device-mapper's striped target refuses a stripe whose length is not a whole number of chunks.
      if (stripeSize <= 0 || areaLength % stripeSize !== 0) {
        this.invalid(lvName, `${seg.name}: stripe size ${stripeSize} does not divide the per-stripe length ${areaLength}`);
      }
    }
    const stripes = seg.areas.map((area): StripeTarget => {
      if (area.kind === 'lv') return this.lvTarget(lvName, seg, area.name, area.start, areaExtents);
      const pv = this.pvs.get(area.name);
      if (!pv) return this.invalid(lvName, `${seg.name} names unknown PV ${area.name}`);
      if (area.start + areaExtents > pv.peCount) {
        this.invalid(
          lvName,
          `${seg.name}: extents ${area.start}–${area.start + areaExtents - 1} exceed PV ${pv.label} (${pv.peCount} extents)`,
        );
      }
      if (pv.placement.kind === 'missing') return { kind: 'missing', volume: pv.label, reason: pv.placement.reason };
      const start = pv.peStart + area.start * this.extentSize;
      if (!Number.isSafeInteger(start + areaLength) || start + areaLength > pv.placement.reader.size) {
        this.invalid(
          lvName,
          `${seg.name}: extents on PV ${pv.label} run past the end of ${pv.placement.candidate} (${pv.placement.reader.size} bytes)`,
        );
      }
      return { kind: 'reader', reader: pv.placement.reader, offset: start };
    });
    return { offset, length, kind: 'striped', stripeSize, stripes };
  }

  private lvTarget(lvName: string, seg: LvSegment, target: string, start: number, extents: number): StripeTarget {
    if (this.resolving.has(target)) this.invalid(lvName, `${seg.name} stacks LVs in a loop through ${target}`);
    const inner = this.resolve(target);
    if (inner instanceof CairnError) {
      throw new CairnError(
        inner.code,
        `${this.where(lvName)} lies on LV ${target}: ${inner.message}`,
        { ...inner.context, vg: this.vg.name, lv: lvName },
        { cause: inner },
      );
    }
    const offset = start * this.extentSize;
    if (offset + extents * this.extentSize > inner.size)
      this.invalid(lvName, `${seg.name}: extents exceed LV ${target} (${inner.size} bytes)`);
    return { kind: 'reader', reader: inner, offset };
  }

  /** Physical extents claimed by two LVs (or twice by one): each LV involved gets the error. */
  private findSharedExtents(): Map<string, CairnError> {
    const byPv = new Map<string, { start: number; end: number; lv: string }[]>();
    for (const lv of this.vg.logicalVolumes) {
      if (lv.problem) continue;
      for (const seg of lv.segments) {
        const stripeCount = seg.stripeCount ?? 1;
        for (const area of seg.areas) {
          if (area.kind !== 'pv') continue;
          const list = byPv.get(area.name) ?? [];
          list.push({ start: area.start, end: area.start + seg.extentCount / stripeCount, lv: lv.name });
          byPv.set(area.name, list);
        }
      }
    }
    const problems = new Map<string, CairnError>();
    for (const [pv, ranges] of byPv) {
      ranges.sort((a, b) => a.start - b.start);
      let widest: { start: number; end: number; lv: string } | undefined;
      for (const range of ranges) {
        if (widest && range.start < widest.end) {
          for (const lv of new Set([widest.lv, range.lv])) {
            if (problems.has(lv)) continue;
            const other = lv === widest.lv ? range.lv : widest.lv;
            problems.set(
              lv,
              new CairnError(
                'ERR_FORMAT_INVALID',
                `LVM metadata: ${this.where(lv)}: extents ${range.start}–${Math.min(range.end, widest.end) - 1} of PV ${pv} also belong to LV ${other}`,
                { vg: this.vg.name, lv, pv },
              ),
            );
          }
        }
        if (!widest || range.end > widest.end) widest = range;
      }
    }
    return problems;
  }
}
