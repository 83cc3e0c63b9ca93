import { CairnError } from '../core/errors.js';
import { isValidName } from '../url/cairn-url.js';
import { CONFIG_BLOB_FILE, POINT_ID_PATTERN, decodeManifest, type PointManifest } from './manifest.js';

/**
 * Limits on what a manifest may describe (docs/formats/point.md). A manifest is read from a
 * repository that someone else may have written: every field is checked before it names a file or
 * sizes an allocation, and a file a manifest names is always the one name the writer gives it.
 */
export const MANIFEST_LIMITS = {
  /** A manifest is a few hundred bytes per disk plus the source description. */
  MAX_MANIFEST_BYTES: 16 * 1024 * 1024,
  MAX_DISKS: 1024,
  /** VM configurations are kilobytes (libvirt XML, a Proxmox .conf, an OVF). */
  MAX_CONFIG_BLOB_BYTES: 16 * 1024 * 1024,
} as const;

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The index file of disk `disk`: the only name a reader accepts (older writers used it too). */
export function indexFileName(disk: string): string {
  return `${disk}.cidx`;
}

export interface ManifestExpectation {
  vm: string;
  id: string;
  /** The repository's chunk size: every point of a repository uses it. */
  chunkSize: number;
}

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/**
 * Decodes `manifest.json` of point `expected.vm/expected.id` and checks every field: the point it
 * names is the directory it lies in, sizes and counts are non-negative safe integers within limits,
 * disk names are valid and distinct, and the index and configuration blob are the names the writer
 * produces (a tampered manifest must not make a reader open `../../etc/shadow`).
 */
export function parseManifest(text: string, name: string, expected: ManifestExpectation): PointManifest {
  const manifest = decodeManifest(text, name);
  const fail = (reason: string) => new CairnError('ERR_FORMAT_INVALID', `manifest ${name} is damaged: ${reason}`, { file: name });
  if (manifest.vm !== expected.vm || manifest.id !== expected.id) {
    throw fail(`it describes point ${String(manifest.vm)}/${String(manifest.id)}, not the point it lies in`);
  }
  if (!POINT_ID_PATTERN.test(manifest.id)) throw fail(`point id ${manifest.id} is malformed`);
  if (typeof manifest.createdMs !== 'number' || !Number.isFinite(manifest.createdMs)) throw fail('createdMs is not a time');
  if (manifest.parent !== undefined && (typeof manifest.parent !== 'string' || !POINT_ID_PATTERN.test(manifest.parent))) {
    throw fail('parent is not a point id');
  }
  if (typeof manifest.source !== 'string') throw fail('source is not a string');
  if (manifest.chunkSize !== expected.chunkSize) {
    throw fail(`chunk size ${String(manifest.chunkSize)} is not the repository's ${expected.chunkSize}`);
  }
  checkConfig(manifest.config, fail);
  if (manifest.disks.length > MANIFEST_LIMITS.MAX_DISKS) throw fail(`it lists ${manifest.disks.length} disks`);
  const seen = new Set<string>();
  for (const disk of manifest.disks as unknown[]) {
    if (typeof disk !== 'object' || disk === null) throw fail('a disk entry is not an object');
    const entry = disk as Record<string, unknown>;
    const diskName = entry.name;
    if (typeof diskName !== 'string' || !isValidName(diskName)) throw fail(`disk name ${JSON.stringify(diskName)} is not valid`);
    if (seen.has(diskName)) throw fail(`disk '${diskName}' is listed twice`);
    seen.add(diskName);
    if (entry.index !== indexFileName(diskName)) {
      throw fail(`disk '${diskName}' names index ${JSON.stringify(entry.index)}, not ${indexFileName(diskName)}`);
    }
    if (typeof entry.indexSha256 !== 'string' || !SHA256_HEX.test(entry.indexSha256)) throw fail(`disk '${diskName}' has no index digest`);
    for (const field of ['size', 'dataChunks', 'bytesRead', 'bytesStored'] as const) {
      if (!isCount(entry[field])) throw fail(`disk '${diskName}' ${field} ${JSON.stringify(entry[field])} is not a byte or chunk count`);
    }
  }
  return manifest;
}

function checkConfig(config: unknown, fail: (reason: string) => CairnError): void {
  if (config === undefined) return;
  if (typeof config !== 'object' || config === null) throw fail('config is not an object');
  const { file, size, sha256 } = config as Record<string, unknown>;
  if (file !== CONFIG_BLOB_FILE) throw fail(`config names file ${JSON.stringify(file)}, not ${CONFIG_BLOB_FILE}`);
  if (!isCount(size) || size > MANIFEST_LIMITS.MAX_CONFIG_BLOB_BYTES) throw fail(`config size ${JSON.stringify(size)} is out of range`);
  if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) throw fail('config has no digest');
}
