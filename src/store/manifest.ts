import { CairnError } from '../core/errors.js';

/** One disk of a restore point, as the manifest records it. */
export interface ManifestDisk {
  name: string;
  size: number;
  /** File name of the disk's index inside the point directory. */
  index: string;
  indexSha256: string;
  /** Chunks that are not holes. */
  dataChunks: number;
  bytesRead: number;
  bytesStored: number;
  /** What the disk was read from when the source was an image format (manifest version 2). */
  origin?: DiskOrigin;
}

/**
 * The image format a disk came from (qcow2, VHD, an rbd diff or export): shown by `cairn stat`, and
 * checked when a later diff applies onto this point (an rbd diff from snapshot S needs toSnap S).
 */
export interface DiskOrigin {
  /** `qcow2`, `vhd`, `rbd-diff` or `rbd-export`. */
  format: string;
  /** One line for people: version, variant, features, file. */
  description: string;
  /** The backing file (qcow2) or parent (VHD) the image names, as it names it. */
  parent?: string;
  /** VHD parent locators, `CODE path` each. */
  parentLocators?: string[];
  /** The image's own identity where the format has one (a VHD's footer uuid, 32 hex digits). */
  id?: string;
  /** rbd: the snapshot a diff starts from (absent for a diff from the beginning). */
  fromSnap?: string;
  /** rbd: the snapshot a diff or export ends at (absent when it ends at the image head). */
  toSnap?: string;
}

/** Longest text an origin field may hold (rbd caps snapshot names at 4096 bytes too). */
const MAX_ORIGIN_TEXT = 8192;

/** `manifest.json` of a restore point (docs/formats/point.md); written last, atomically. */
export interface PointManifest {
  format: 'cairn-point';
  /** 1, or 2 when a disk records its `origin` (version 2 is version 1 plus that optional field). */
  version: 1 | 2;
  vm: string;
  id: string;
  createdMs: number;
  parent?: string;
  source: string;
  chunkSize: number;
  config?: { file: string; size: number; sha256: string };
  disks: ManifestDisk[];
}

export const MANIFEST_FILE = 'manifest.json';
export const CONFIG_BLOB_FILE = 'config.blob';

export function encodeManifest(manifest: PointManifest): string {
  return JSON.stringify(manifest, null, 2) + '\n';
}

export function decodeManifest(text: string, name: string): PointManifest {
  let parsed: Partial<PointManifest>;
  try {
    parsed = JSON.parse(text) as Partial<PointManifest>;
  } catch (err) {
    throw new CairnError('ERR_FORMAT_INVALID', `manifest ${name} is not valid JSON`, { file: name }, { cause: err });
  }
  if (parsed.format !== 'cairn-point' || (parsed.version !== 1 && parsed.version !== 2) || !Array.isArray(parsed.disks)) {
    throw new CairnError('ERR_FORMAT_INVALID', `manifest ${name} is not a supported Cairn point manifest`, { file: name });
  }
  for (const disk of parsed.disks as Partial<ManifestDisk>[]) {
    if (disk.origin !== undefined && (parsed.version < 2 || !isDiskOrigin(disk.origin))) {
      throw new CairnError('ERR_FORMAT_INVALID', `manifest ${name} has a malformed origin for disk '${String(disk.name)}'`, { file: name });
    }
  }
  return parsed as PointManifest;
}

function isDiskOrigin(value: unknown): value is DiskOrigin {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const origin = value as Record<string, unknown>;
  const text = (field: unknown, optional: boolean) =>
    (optional && field === undefined) || (typeof field === 'string' && field.length <= MAX_ORIGIN_TEXT);
  const locators = origin.parentLocators;
  return (
    text(origin.format, false) &&
    text(origin.description, false) &&
    text(origin.parent, true) &&
    text(origin.id, true) &&
    text(origin.fromSnap, true) &&
    text(origin.toSnap, true) &&
    (locators === undefined || (Array.isArray(locators) && locators.length <= 8 && locators.every((l) => text(l, false))))
  );
}

/** The manifest version for these disks: 2 only when one records an origin, so raw backups stay version 1. */
export function manifestVersionFor(disks: readonly ManifestDisk[]): 1 | 2 {
  return disks.some((disk) => disk.origin !== undefined) ? 2 : 1;
}

/** Point ids are UTC timestamps in ISO 8601 basic form, so they sort by time and need no escaping. */
export function pointIdFor(timeMs: number): string {
  return new Date(Math.floor(timeMs / 1000) * 1000).toISOString().replace(/[-:]/g, '').replace('.000Z', 'Z');
}

export function pointIdTimeMs(id: string): number | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(id);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s] = match;
  return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
}

export const POINT_ID_PATTERN = /^\d{8}T\d{6}Z$/;

/** A new id after `latest` (ids stay unique and ordered even for several backups in one second). */
export function nextPointId(nowMs: number, latest: string | undefined): string {
  const latestMs = latest === undefined ? undefined : pointIdTimeMs(latest);
  const timeMs = latestMs !== undefined && latestMs >= Math.floor(nowMs / 1000) * 1000 ? latestMs + 1000 : nowMs;
  return pointIdFor(timeMs);
}
