import type { BlockReader } from '../../core/block-reader.js';
import { CairnError, isCairnError } from '../../core/errors.js';
import { LVM_SECTOR_SIZE } from './layout.js';
import { LvMapper, type PvPlacement } from './lv-mapping.js';
import { MetadataTextCache, scanPhysicalVolume, type PvInfo } from './physical-volume.js';
import type { LvEntry, VgMetadata } from './vg-metadata.js';

/** A device that may hold a PV: a whole disk or a partition of a restore point. */
export interface LvmCandidate {
  /** How messages name it (`sda`, `sda/p2`). */
  readonly name: string;
  readonly reader: BlockReader;
}

export interface LogicalVolumeSegment {
  readonly startExtent: number;
  readonly extentCount: number;
  readonly type: string;
  readonly stripeCount?: number;
  /** Bytes. */
  readonly stripeSize?: number;
  /** `pv0` / an LV name, and the first extent used there. */
  readonly areas: readonly { readonly volume: string; readonly kind: 'pv' | 'lv'; readonly startExtent: number }[];
}

export interface LogicalVolume {
  readonly name: string;
  readonly uuid?: string;
  /** Bytes (extents × extent size), as `lvs --units b` reports it. */
  readonly size: number;
  readonly segments: readonly LogicalVolumeSegment[];
  /** PVs (`pv1 (UUID …)`) the LV lies on that are not among the disks: those ranges fail to read. */
  readonly missingPhysicalVolumes: readonly string[];
  /** Why `open` will fail (ERR_UNSUPPORTED for thin, raid, snapshots…; ERR_FORMAT_INVALID for damage). */
  readonly problem?: CairnError;
  /** The LV as a disk; throws `problem`. */
  open(): BlockReader;
}

export interface VolumeGroupPv {
  /** The name the metadata uses (`pv0`). */
  readonly name: string;
  readonly uuid: string;
  /** The candidate it was found on, or undefined and the reason it is missing. */
  readonly candidate?: string;
  readonly missing?: string;
}

export interface VolumeGroup {
  readonly name: string;
  readonly uuid: string;
  /** Sequence number of the metadata copy used (the highest found). */
  readonly seqno: number;
  /** Bytes. */
  readonly extentSize: number;
  readonly physicalVolumes: readonly VolumeGroupPv[];
  /** Visible LVs only, in metadata order: internal ones (_tmeta, _rimage_0, snapshot0…) are parts of these. */
  readonly logicalVolumes: readonly LogicalVolume[];
}

export interface LvmScan {
  readonly volumeGroups: readonly VolumeGroup[];
  /** Every PV label found, by candidate. */
  readonly physicalVolumes: readonly { readonly candidate: string; readonly pv: PvInfo }[];
  /** What did not stop the scan: damaged labels or metadata areas, missing or duplicate PVs, conflicts. */
  readonly problems: readonly CairnError[];
}

/**
 * Finds the PVs among `candidates` and assembles their volume groups: the metadata copy with the
 * highest seqno wins, PVs are matched by UUID, and each LV becomes readable where its PVs are present.
 * Reads the label sectors and metadata areas only; bounded by LVM_LIMITS per area.
 */
export async function assembleVolumeGroups(candidates: readonly LvmCandidate[]): Promise<LvmScan> {
  const problems: CairnError[] = [];
  const found: { candidate: LvmCandidate; pv: PvInfo }[] = [];
  const cache = new MetadataTextCache();
  for (const candidate of candidates) {
    try {
      const pv = await scanPhysicalVolume(candidate.reader, cache);
      if (!pv) continue;
      found.push({ candidate, pv });
      for (const problem of pv.problems) problems.push(prefixed(candidate.name, problem));
    } catch (err) {
      if (!isCairnError(err)) throw err;
      problems.push(prefixed(candidate.name, err));
    }
  }
  const byUuid = new Map<string, { candidate: LvmCandidate; pv: PvInfo }[]>();
  for (const entry of found) byUuid.set(entry.pv.uuid, [...(byUuid.get(entry.pv.uuid) ?? []), entry]);
  for (const [uuid, entries] of byUuid) {
    if (entries.length > 1) {
      problems.push(
        new CairnError(
          'ERR_FORMAT_INVALID',
          `PV UUID ${uuid} is on several disks (${entries.map((e) => e.candidate.name).join(', ')}); none of them is used`,
          {
            pvUuid: uuid,
          },
        ),
      );
    }
  }

  const volumeGroups = chooseMetadata(found, problems).map(({ metadata, source }) => buildVolumeGroup(metadata, source, byUuid, problems));
  const names = new Map<string, string[]>();
  for (const vg of volumeGroups) names.set(vg.name, [...(names.get(vg.name) ?? []), vg.uuid]);
  for (const [name, uuids] of names) {
    if (uuids.length > 1)
      problems.push(
        new CairnError('ERR_FORMAT_INVALID', `${uuids.length} volume groups are named ${name} (UUIDs ${uuids.join(', ')})`, { vg: name }),
      );
  }
  return { volumeGroups, physicalVolumes: found.map(({ candidate, pv }) => ({ candidate: candidate.name, pv })), problems };
}

/** The VG of that name (ERR_NOT_FOUND, listing the scan's problems, when there is none; an error when two share it). */
export function findVolumeGroup(scan: LvmScan, name: string): VolumeGroup {
  const matches = scan.volumeGroups.filter((vg) => vg.name === name);
  if (matches.length > 1) {
    throw new CairnError('ERR_FORMAT_INVALID', `${matches.length} volume groups are named ${name}; Cairn cannot tell which is meant`, {
      vg: name,
    });
  }
  const vg = matches[0];
  if (vg) return vg;
  const known = scan.volumeGroups.map((v) => v.name).join(', ') || 'none';
  // The problems usually say why (a damaged metadata area, a damaged label); a few are enough.
  const shown = scan.problems.slice(0, 5).map((p) => p.message);
  if (scan.problems.length > shown.length) shown.push(`${scan.problems.length - shown.length} more`);
  const why = shown.length ? `; problems found: ${shown.join('; ')}` : '';
  throw new CairnError('ERR_NOT_FOUND', `no volume group ${name} on these disks (found: ${known})${why}`, { vg: name });
}

/** The visible LV `lvName` of VG `vgName` (ERR_NOT_FOUND when either is not there). */
export function findLogicalVolume(scan: LvmScan, vgName: string, lvName: string): LogicalVolume {
  const vg = findVolumeGroup(scan, vgName);
  const lv = vg.logicalVolumes.find((candidate) => candidate.name === lvName);
  if (lv) return lv;
  const known = vg.logicalVolumes.map((l) => l.name).join(', ') || 'none';
  throw new CairnError('ERR_NOT_FOUND', `no logical volume ${lvName} in VG ${vgName} (found: ${known})`, { vg: vgName, lv: lvName });
}

function prefixed(name: string, err: CairnError): CairnError {
  return new CairnError(err.code, `${name}: ${err.message}`, { ...err.context, device: name }, { cause: err });
}

/** Per VG UUID, the copy with the highest seqno; two different copies with the same seqno are a conflict. */
function chooseMetadata(
  found: readonly { candidate: LvmCandidate; pv: PvInfo }[],
  problems: CairnError[],
): { metadata: VgMetadata; source: string }[] {
  const best = new Map<string, { metadata: VgMetadata; source: string }>();
  for (const { candidate, pv } of found) {
    for (const metadata of pv.metadata) {
      const current = best.get(metadata.uuid);
      if (!current || metadata.seqno > current.metadata.seqno) {
        best.set(metadata.uuid, { metadata, source: candidate.name });
      } else if (metadata.seqno === current.metadata.seqno && metadata !== current.metadata) {
        problems.push(
          new CairnError(
            'ERR_FORMAT_INVALID',
            `VG ${metadata.name}: ${current.source} and ${candidate.name} hold different metadata with the same seqno ${metadata.seqno}; using the copy on ${current.source}`,
            { vg: metadata.name, seqno: metadata.seqno },
          ),
        );
      }
    }
  }
  return [...best.values()];
}

function buildVolumeGroup(
  metadata: VgMetadata,
  source: string,
  byUuid: ReadonlyMap<string, { candidate: LvmCandidate; pv: PvInfo }[]>,
  problems: CairnError[],
): VolumeGroup {
  for (const problem of metadata.problems) problems.push(prefixed(source, problem));
  const placements = new Map<string, PvPlacement>();
  const physicalVolumes: VolumeGroupPv[] = metadata.physicalVolumes.map((entry) => {
    const placement = placePv(metadata, entry.uuid, entry.missing, byUuid);
    placements.set(entry.name, placement);
    return placement.kind === 'found'
      ? { name: entry.name, uuid: entry.uuid, candidate: placement.candidate }
      : { name: entry.name, uuid: entry.uuid, missing: placement.reason };
  });
  const mapper = new LvMapper(metadata, placements);
  const logicalVolumes = metadata.logicalVolumes.filter((lv) => lv.visible).map((lv) => logicalVolume(lv, mapper));
  return {
    name: metadata.name,
    uuid: metadata.uuid,
    seqno: metadata.seqno,
    extentSize: metadata.extentSizeSectors * LVM_SECTOR_SIZE,
    physicalVolumes,
    logicalVolumes,
  };
}

function placePv(
  metadata: VgMetadata,
  uuid: string,
  markedMissing: boolean,
  byUuid: ReadonlyMap<string, { candidate: LvmCandidate; pv: PvInfo }[]>,
): PvPlacement {
  if (markedMissing) return { kind: 'missing', reason: 'which lvm marked MISSING when the VG was last changed' };
  const entries = byUuid.get(uuid) ?? [];
  if (entries.length === 0) return { kind: 'missing', reason: 'which is not on any of the disks given' };
  if (entries.length > 1)
    return { kind: 'missing', reason: `which is on several disks (${entries.map((e) => e.candidate.name).join(', ')})` };
  const [{ candidate, pv }] = entries as [{ candidate: LvmCandidate; pv: PvInfo }];
  // A PV whose own areas name another VG was moved there (vgsplit, vgreduce + vgextend): stale here.
  if (pv.metadata.length > 0 && !pv.metadata.some((m) => m.uuid === metadata.uuid)) {
    return { kind: 'missing', reason: `which ${candidate.name} holds, but as a PV of VG ${pv.metadata[0]?.name}` };
  }
  return { kind: 'found', reader: candidate.reader, candidate: candidate.name };
}

function logicalVolume(lv: LvEntry, mapper: LvMapper): LogicalVolume {
  const resolved = mapper.resolve(lv.name);
  const problem = resolved instanceof CairnError ? resolved : undefined;
  return {
    name: lv.name,
    uuid: lv.uuid,
    size: resolved instanceof CairnError ? mapper.sizeOf(lv) : resolved.size,
    segments: lv.segments.map((seg) => ({
      startExtent: seg.startExtent,
      extentCount: seg.extentCount,
      type: seg.type,
      stripeCount: seg.stripeCount,
      stripeSize: seg.stripeSizeSectors === undefined ? undefined : seg.stripeSizeSectors * LVM_SECTOR_SIZE,
      areas: seg.areas.map((area) => ({ volume: area.name, kind: area.kind, startExtent: area.start })),
    })),
    missingPhysicalVolumes: mapper.missingPvsOf(lv),
    problem,
    open(): BlockReader {
      if (problem) throw problem;
      return resolved as BlockReader;
    },
  };
}
