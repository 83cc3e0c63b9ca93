import { mkdir, rename, rm, open } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError, systemErrorCode } from '../core/errors.js';
import { fsyncDirectory } from '../util/atomic-file.js';
import { sha256Hex } from './chunk-format.js';
import { encodeDiskIndex, type DiskIndex } from './disk-index.js';
import {
  CONFIG_BLOB_FILE,
  MANIFEST_FILE,
  encodeManifest,
  manifestVersionFor,
  type DiskOrigin,
  type ManifestDisk,
  type PointManifest,
} from './manifest.js';
import { translateWriteError } from './fs-chunk-store.js';

async function writeDurably(path: string, data: Buffer | string): Promise<void> {
  const handle = await open(path, 'wx', 0o444);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A restore point being written. Everything goes into a hidden `.tmp-…` directory beside the VM's
 * points; `publish` writes the manifest last and renames the directory into place, so a point is
 * either absent or whole. A draft left by a killed process is invisible and removed by `cairn gc`.
 */
export class PointDraft {
  private readonly disks: ManifestDisk[] = [];
  private config: PointManifest['config'];
  private closed = false;

  constructor(
    readonly vm: string,
    private readonly vmDir: string,
    readonly tempDir: string,
  ) {}

  static async create(vm: string, vmDir: string): Promise<PointDraft> {
    const tempDir = join(vmDir, `.tmp-point-${process.pid}-${Date.now()}`);
    try {
      await mkdir(tempDir, { recursive: true });
    } catch (err) {
      throw translateWriteError(err, tempDir);
    }
    return new PointDraft(vm, vmDir, tempDir);
  }

  async addDisk(
    name: string,
    index: DiskIndex,
    stats: { bytesRead: number; bytesStored: number; dataChunks: number; origin?: DiskOrigin },
  ): Promise<void> {
    if (this.disks.some((disk) => disk.name === name)) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `disk '${name}' is given twice`, { disk: name });
    }
    const file = `${name}.cidx`;
    const encoded = encodeDiskIndex(index);
    try {
      await writeDurably(join(this.tempDir, file), encoded);
    } catch (err) {
      throw translateWriteError(err, file);
    }
    this.disks.push({ name, size: index.diskSize, index: file, indexSha256: sha256Hex(encoded), ...stats });
  }

  async setConfig(blob: Buffer): Promise<void> {
    try {
      await writeDurably(join(this.tempDir, CONFIG_BLOB_FILE), blob);
    } catch (err) {
      throw translateWriteError(err, CONFIG_BLOB_FILE);
    }
    this.config = { file: CONFIG_BLOB_FILE, size: blob.length, sha256: sha256Hex(blob) };
  }

  /** Writes the manifest and makes the point visible under `id`. */
  async publish(fields: { id: string; createdMs: number; parent?: string; source: string; chunkSize: number }): Promise<PointManifest> {
    const manifest: PointManifest = {
      format: 'cairn-point',
      version: manifestVersionFor(this.disks),
      vm: this.vm,
      id: fields.id,
      createdMs: fields.createdMs,
      ...(fields.parent !== undefined ? { parent: fields.parent } : {}),
      source: fields.source,
      chunkSize: fields.chunkSize,
      ...(this.config ? { config: this.config } : {}),
      disks: this.disks,
    };
    try {
      await writeDurably(join(this.tempDir, MANIFEST_FILE), encodeManifest(manifest));
      await fsyncDirectory(this.tempDir);
      await rename(this.tempDir, join(this.vmDir, fields.id));
      await fsyncDirectory(this.vmDir);
    } catch (err) {
      if (systemErrorCode(err) === 'ENOTEMPTY' || systemErrorCode(err) === 'EEXIST') {
        throw new CairnError(
          'ERR_EXISTS',
          `point ${this.vm}/${fields.id} already exists`,
          { vm: this.vm, point: fields.id },
          { cause: err },
        );
      }
      throw translateWriteError(err, MANIFEST_FILE);
    }
    this.closed = true;
    return manifest;
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await rm(this.tempDir, { recursive: true, force: true });
  }
}
