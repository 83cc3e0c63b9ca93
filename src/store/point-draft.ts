import { rename, rm, open } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError, systemErrorCode } from '../core/errors.js';
import { assertValidName } from '../url/cairn-url.js';
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
import { MANIFEST_LIMITS, indexFileName } from './manifest-check.js';
import type { RepositoryAccess } from './repository-access.js';

async function writeDurably(path: string, data: Buffer | string, access: RepositoryAccess): Promise<void> {
  const handle = await open(path, 'wx', access.fileMode('immutable'));
  try {
    await access.setFileMode(handle, 'immutable');
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
  private renamed = false;

  constructor(
    readonly vm: string,
    private readonly vmDir: string,
    readonly tempDir: string,
    private readonly access: RepositoryAccess,
  ) {}

  /** `vmDir` is `vms/<vm>`, which the repository has made sure exists and is a directory. */
  static async create(vm: string, vmDir: string, access: RepositoryAccess): Promise<PointDraft> {
    const tempDir = join(vmDir, `.tmp-point-${process.pid}-${Date.now()}`);
    try {
      await access.mkdir(tempDir);
    } catch (err) {
      throw translateWriteError(err, tempDir);
    }
    return new PointDraft(vm, vmDir, tempDir, access);
  }

  /**
   * True once the point is in place under its id, even if a later step of `publish` failed: its
   * chunks are then referenced and must not be cleaned up with the failed backup.
   */
  get visible(): boolean {
    return this.renamed;
  }

  async addDisk(
    name: string,
    index: DiskIndex,
    stats: { bytesRead: number; bytesStored: number; dataChunks: number; origin?: DiskOrigin },
  ): Promise<void> {
    assertValidName('disk', name);
    if (this.disks.some((disk) => disk.name === name)) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `disk '${name}' is given twice`, { disk: name });
    }
    const file = indexFileName(name);
    const encoded = encodeDiskIndex(index);
    try {
      await writeDurably(join(this.tempDir, file), encoded, this.access);
    } catch (err) {
      throw translateWriteError(err, file);
    }
    this.disks.push({ name, size: index.diskSize, index: file, indexSha256: sha256Hex(encoded), ...stats });
  }

  async setConfig(blob: Buffer): Promise<void> {
    if (blob.length > MANIFEST_LIMITS.MAX_CONFIG_BLOB_BYTES) {
      // Readers refuse a larger blob as damage: never write one.
      throw new CairnError(
        'ERR_INVALID_ARGUMENT',
        `the VM configuration holds ${blob.length} bytes, more than the ${MANIFEST_LIMITS.MAX_CONFIG_BLOB_BYTES} a point may keep`,
      );
    }
    try {
      await writeDurably(join(this.tempDir, CONFIG_BLOB_FILE), blob, this.access);
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
    const encoded = encodeManifest(manifest);
    if (Buffer.byteLength(encoded) > MANIFEST_LIMITS.MAX_MANIFEST_BYTES) {
      throw new CairnError(
        'ERR_INVALID_ARGUMENT',
        `the manifest of ${this.vm}/${fields.id} would exceed ${MANIFEST_LIMITS.MAX_MANIFEST_BYTES} bytes`,
      );
    }
    try {
      await writeDurably(join(this.tempDir, MANIFEST_FILE), encoded, this.access);
      await fsyncDirectory(this.tempDir);
      await rename(this.tempDir, join(this.vmDir, fields.id));
      this.renamed = true;
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
