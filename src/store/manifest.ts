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
}

/** `manifest.json` of a restore point (docs/formats/point.md); written last, atomically. */
export interface PointManifest {
  format: 'cairn-point';
  version: 1;
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
  if (parsed.format !== 'cairn-point' || parsed.version !== 1 || !Array.isArray(parsed.disks)) {
    throw new CairnError('ERR_FORMAT_INVALID', `manifest ${name} is not a supported Cairn point manifest`, { file: name });
  }
  return parsed as PointManifest;
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
