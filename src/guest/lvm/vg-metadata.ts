import { CairnError, isCairnError } from '../../core/errors.js';
import type { ConfigScalar, ConfigSection, ConfigValue } from './config-text.js';
import { parseConfigText } from './config-text.js';
import { canonicalLvmUuid, lvmNameProblem, quoteName } from './lvm-names.js';

/**
 * The VG described by one copy of LVM2 text metadata, checked field by field as lvm2's
 * `lib/format_text/import_vsn1.c` reads it (`_read_vg`, `_read_pv`, `_read_lvnames`, `_read_segment`,
 * `text_import_areas`; `lib/striped/striped.c` for `stripe_count`/`stripe_size`/`stripes`). Sizes stay
 * in lvm's units here (sectors, extents); the VG assembly turns them into bytes.
 *
 * A damaged LV does not spoil the VG: its entry carries `problem` and the other LVs stay usable.
 */
export interface PvEntry {
  /** The section name the LV segments refer to (`pv0`). */
  readonly name: string;
  readonly uuid: string;
  /** The device the PV was on when the metadata was written: a hint, never used to find it. */
  readonly deviceHint?: string;
  readonly peStartSectors: number;
  readonly peCount: number;
  readonly devSizeSectors?: number;
  /** lvm marked it MISSING (the VG was changed while the PV was away): its extents are not trusted. */
  readonly missing: boolean;
}

/** One area of a segment: `start` extents into a PV's data area or into another (hidden) LV. */
export interface LvArea {
  readonly kind: 'pv' | 'lv';
  readonly name: string;
  readonly start: number;
}

export interface LvSegment {
  /** `segment1`, as named in the metadata. */
  readonly name: string;
  readonly startExtent: number;
  readonly extentCount: number;
  /** `striped` (also linear: stripe_count 1), `linear`, `zero`, or a type Cairn does not read. */
  readonly type: string;
  readonly stripeCount?: number;
  readonly stripeSizeSectors?: number;
  readonly areas: readonly LvArea[];
  /** Old-style snapshot segments: the origin LV and the LV that stores the copy-on-write exceptions. */
  readonly origin?: string;
  readonly cowStore?: string;
  /** The snapshot is being merged back into its origin (`merging_store` instead of `cow_store`). */
  readonly merging?: boolean;
}

export interface LvEntry {
  readonly name: string;
  readonly uuid?: string;
  readonly status: readonly string[];
  /**
   * What `lvs` lists: the VISIBLE flag, except that a snapshot's COW store shows when its origin does
   * (lvm2 `lv_is_visible`); the others are parts of another LV (_tmeta, _rimage_0, snapshot0…).
   */
  readonly visible: boolean;
  /** Sorted by start extent. */
  readonly segments: readonly LvSegment[];
  readonly problem?: CairnError;
}

export interface VgMetadata {
  readonly name: string;
  readonly uuid: string;
  readonly seqno: number;
  readonly extentSizeSectors: number;
  readonly physicalVolumes: readonly PvEntry[];
  readonly logicalVolumes: readonly LvEntry[];
  /** LVs left out because even their name is unusable (it would end up in paths and URLs). */
  readonly problems: readonly CairnError[];
}

/** Segment types whose areas are plain PV or LV extents, read the way lvm2's striped.c reads them. */
const STRIPED_TYPES: ReadonlySet<string> = new Set(['striped', 'linear']);
/** lvm2 MAX_STRIPES. */
const MAX_STRIPES = 128;
const UINT32_MAX = 0xffffffff;

/** Parses and checks one metadata text; ERR_FORMAT_INVALID when the VG itself cannot be read. */
export function parseVgMetadata(text: Buffer): VgMetadata {
  return readVg(parseConfigText(text));
}

class Scope {
  constructor(readonly where: string) {}

  fail(why: string): never {
    throw new CairnError('ERR_FORMAT_INVALID', `LVM metadata: ${this.where}: ${why}`, { structure: 'lvm metadata', where: this.where });
  }

  entry(section: ConfigSection, key: string): ConfigSection | ConfigValue | undefined {
    return section.entries.get(key);
  }

  section(section: ConfigSection, key: string, required: boolean): ConfigSection | undefined {
    const found = section.entries.get(key);
    if (found === undefined) return required ? this.fail(`'${key}' is missing`) : undefined;
    if (found.type !== 'section') return this.fail(`'${key}' is not a section`);
    return found;
  }

  int(section: ConfigSection, key: string, min: number, max: number): number {
    const value = this.optionalInt(section, key, min, max);
    return value === undefined ? this.fail(`'${key}' is missing`) : value;
  }

  optionalInt(section: ConfigSection, key: string, min: number, max: number): number | undefined {
    const found = section.entries.get(key);
    if (found === undefined) return undefined;
    if (found.type !== 'int') return this.fail(`'${key}' is not an integer`);
    return this.checkInt(found.value, key, min, max);
  }

  checkInt(value: bigint, what: string, min: number, max: number): number {
    if (value < BigInt(min) || value > BigInt(max)) return this.fail(`'${what}' = ${value} is outside [${min}, ${max}]`);
    return Number(value);
  }

  string(section: ConfigSection, key: string): string {
    const value = this.optionalString(section, key);
    return value === undefined ? this.fail(`'${key}' is missing`) : value;
  }

  optionalString(section: ConfigSection, key: string): string | undefined {
    const found = section.entries.get(key);
    if (found === undefined) return undefined;
    if (found.type !== 'string') return this.fail(`'${key}' is not a string`);
    return found.value;
  }

  stringList(section: ConfigSection, key: string): string[] {
    const found = section.entries.get(key);
    if (found === undefined) return [];
    if (found.type !== 'array') return this.fail(`'${key}' is not a list`);
    return found.items.map((item) => (item.type === 'string' ? item.value : this.fail(`'${key}' holds a non-string`)));
  }

  uuid(section: ConfigSection, key: string): string {
    const text = this.string(section, key);
    return canonicalLvmUuid(text) ?? this.fail(`'${key}' = ${quoteName(text)} is not an LVM UUID`);
  }

  name(name: string, what: string): string {
    const problem = lvmNameProblem(name);
    return problem === undefined ? name : this.fail(`invalid ${what} name: ${problem}`);
  }
}

function readVg(root: ConfigSection): VgMetadata {
  // As lvm's _read_vg: top-level values (contents, version, description…) are skipped; the one
  // section is the VG. Two would be ambiguous, so refuse them.
  const sections = [...root.entries.values()].filter((entry): entry is ConfigSection => entry.type === 'section');
  const top = new Scope('top level');
  const vgSection = sections[0];
  if (vgSection === undefined) return top.fail('no volume group section');
  if (sections.length > 1) return top.fail(`${sections.length} volume group sections`);
  const vgScope = new Scope(`VG ${quoteName(vgSection.name)}`);
  const name = vgScope.name(vgSection.name, 'VG');
  const uuid = vgScope.uuid(vgSection, 'id');
  const seqno = vgScope.int(vgSection, 'seqno', 0, UINT32_MAX);
  const extentSizeSectors = vgScope.int(vgSection, 'extent_size', 1, UINT32_MAX);
  const physicalVolumes = readPvs(vgScope, vgSection);
  const problems: CairnError[] = [];
  const logicalVolumes = readLvs(vgScope, vgSection, new Set(physicalVolumes.map((pv) => pv.name)), problems);
  return { name, uuid, seqno, extentSizeSectors, physicalVolumes, logicalVolumes, problems };
}

function readPvs(vgScope: Scope, vgSection: ConfigSection): PvEntry[] {
  const pvsSection = vgScope.section(vgSection, 'physical_volumes', true) as ConfigSection;
  const pvs: PvEntry[] = [];
  const uuids = new Set<string>();
  for (const [pvName, pvSection] of pvsSection.entries) {
    const scope = new Scope(`${vgScope.where}: PV ${quoteName(pvName)}`);
    if (pvSection.type !== 'section') return scope.fail('is not a section');
    const uuid = scope.uuid(pvSection, 'id');
    if (uuids.has(uuid)) return scope.fail(`UUID ${uuid} is listed twice`);
    uuids.add(uuid);
    const flags = [...scope.stringList(pvSection, 'status'), ...scope.stringList(pvSection, 'flags')];
    pvs.push({
      name: pvName,
      uuid,
      deviceHint: scope.optionalString(pvSection, 'device'),
      peStartSectors: scope.int(pvSection, 'pe_start', 0, Number.MAX_SAFE_INTEGER),
      peCount: scope.int(pvSection, 'pe_count', 0, UINT32_MAX),
      devSizeSectors: scope.optionalInt(pvSection, 'dev_size', 0, Number.MAX_SAFE_INTEGER),
      missing: flags.includes('MISSING'),
    });
  }
  return pvs;
}

function readLvs(vgScope: Scope, vgSection: ConfigSection, pvNames: ReadonlySet<string>, problems: CairnError[]): LvEntry[] {
  const lvsSection = vgScope.section(vgSection, 'logical_volumes', false);
  if (lvsSection === undefined) return [];
  const lvNames = new Set(lvsSection.entries.keys());
  const lvs: LvEntry[] = [];
  for (const [lvName, lvSection] of lvsSection.entries) {
    const scope = new Scope(`${vgScope.where}: LV ${quoteName(lvName)}`);
    const nameProblem = lvmNameProblem(lvName);
    if (nameProblem !== undefined) {
      problems.push(new CairnError('ERR_FORMAT_INVALID', `LVM metadata: ${scope.where}: left out, ${nameProblem}`, { vg: vgScope.where }));
      continue;
    }
    try {
      const section = lvSection.type === 'section' ? lvSection : scope.fail('is not a section');
      lvs.push(readLv(scope, lvName, section, pvNames, lvNames));
    } catch (err) {
      if (!isCairnError(err)) throw err;
      // Keep what identifies the LV so it can still be listed and named in the error.
      const status = lvSection.type === 'section' ? lenientStringList(lvSection, 'status') : [];
      lvs.push({ name: lvName, status, visible: status.includes('VISIBLE'), segments: [], problem: err });
    }
  }
  return withSnapshotVisibility(lvs);
}

/**
 * lvm2 `lv_is_visible` (lib/metadata/snapshot_manip.c): the internal snapshot LV (`snapshot0`) is
 * hidden; its COW store is what `lvs` shows as the snapshot, visible when the origin is (always for a
 * virtual, zero-backed origin), hidden while it merges. The metadata does not flag the COW store VISIBLE.
 */
function withSnapshotVisibility(lvs: LvEntry[]): LvEntry[] {
  const byName = new Map(lvs.map((lv) => [lv.name, lv]));
  const snapshotOf = new Map<string, LvSegment>();
  for (const lv of lvs) for (const seg of lv.segments) if (seg.cowStore !== undefined) snapshotOf.set(seg.cowStore, seg);
  return lvs.map((lv) => {
    if (lv.segments.some((seg) => seg.type === 'snapshot')) return { ...lv, visible: false };
    const snapshot = snapshotOf.get(lv.name);
    if (!snapshot) return lv;
    const origin = byName.get(snapshot.origin ?? '');
    const virtualOrigin = origin?.segments.some((seg) => seg.type === 'zero') ?? false;
    return { ...lv, visible: !snapshot.merging && (virtualOrigin || (origin?.visible ?? false)) };
  });
}

function readLv(scope: Scope, name: string, section: ConfigSection, pvNames: ReadonlySet<string>, lvNames: ReadonlySet<string>): LvEntry {
  const uuid = scope.uuid(section, 'id');
  const status = scope.stringList(section, 'status');
  const segmentCount = scope.int(section, 'segment_count', 1, UINT32_MAX);
  const segments: LvSegment[] = [];
  for (const [segName, segSection] of section.entries) {
    // lvm: every subsection of an LV is a segment.
    if (segSection.type !== 'section') continue;
    segments.push(readSegment(new Scope(`${scope.where}: ${quoteName(segName)}`), segSection, pvNames, lvNames));
  }
  if (segments.length !== segmentCount) scope.fail(`segment_count is ${segmentCount} but ${segments.length} segments follow`);
  segments.sort((a, b) => a.startExtent - b.startExtent);
  return { name, uuid, status, visible: status.includes('VISIBLE'), segments };
}

function readSegment(scope: Scope, section: ConfigSection, pvNames: ReadonlySet<string>, lvNames: ReadonlySet<string>): LvSegment {
  const startExtent = scope.int(section, 'start_extent', 0, UINT32_MAX);
  const extentCount = scope.int(section, 'extent_count', 1, UINT32_MAX);
  const type = scope.string(section, 'type');
  const base = { name: section.name, startExtent, extentCount, type };
  if (type === 'snapshot') {
    // lib/snapshot/snapshot.c _snap_text_import: exactly one of cow_store and merging_store.
    const cowStore = scope.optionalString(section, 'cow_store');
    const mergingStore = scope.optionalString(section, 'merging_store');
    if ((cowStore === undefined) === (mergingStore === undefined))
      scope.fail('a snapshot needs exactly one of cow_store and merging_store');
    return {
      ...base,
      areas: [],
      origin: scope.string(section, 'origin'),
      cowStore: cowStore ?? mergingStore,
      merging: mergingStore !== undefined,
    };
  }
  if (!STRIPED_TYPES.has(type)) return { ...base, areas: [] };
  const stripeCount = scope.int(section, 'stripe_count', 1, MAX_STRIPES);
  const stripeSizeSectors = stripeCount > 1 ? scope.int(section, 'stripe_size', 1, UINT32_MAX) : undefined;
  if (extentCount % stripeCount !== 0) scope.fail(`extent_count ${extentCount} is not a multiple of stripe_count ${stripeCount}`);
  const stripes = scope.entry(section, 'stripes');
  if (stripes?.type !== 'array') return scope.fail("'stripes' is missing or not a list");
  if (stripes.items.length !== 2 * stripeCount) scope.fail(`'stripes' has ${stripes.items.length} items for ${stripeCount} stripes`);
  const areas: LvArea[] = [];
  for (let i = 0; i < stripeCount; i++) areas.push(readArea(scope, stripes.items[2 * i], stripes.items[2 * i + 1], pvNames, lvNames));
  return { ...base, stripeCount, stripeSizeSectors, areas };
}

function readArea(
  scope: Scope,
  nameItem: ConfigScalar | undefined,
  startItem: ConfigScalar | undefined,
  pvNames: ReadonlySet<string>,
  lvNames: ReadonlySet<string>,
): LvArea {
  if (nameItem?.type !== 'string') return scope.fail("a 'stripes' volume name is not a string");
  if (startItem?.type !== 'int') return scope.fail(`the offset after ${quoteName(nameItem.value)} in 'stripes' is not an integer`);
  const start = scope.checkInt(startItem.value, `stripes offset on ${quoteName(nameItem.value)}`, 0, UINT32_MAX);
  // As text_import_areas: a PV section name first, then an LV of the same VG.
  if (pvNames.has(nameItem.value)) return { kind: 'pv', name: nameItem.value, start };
  if (lvNames.has(nameItem.value)) return { kind: 'lv', name: nameItem.value, start };
  return scope.fail(`'stripes' names ${quoteName(nameItem.value)}, which is neither a PV nor an LV of the VG`);
}

function lenientStringList(section: ConfigSection, key: string): string[] {
  const found = section.entries.get(key);
  if (found?.type !== 'array') return [];
  return found.items.flatMap((item) => (item.type === 'string' ? [item.value] : []));
}
