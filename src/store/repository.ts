import { lstat, mkdir, readdir, rename, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError, systemErrorCode } from '../core/errors.js';
import { assertValidName, isValidName } from '../url/cairn-url.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { sha256Hex } from './chunk-format.js';
import { DISK_INDEX, decodeDiskIndex, indexFileBounds, type DiskIndex } from './disk-index.js';
import { FsChunkStore } from './fs-chunk-store.js';
import { translateWriteError } from './write-error.js';
import { ChunkWriteSession } from './chunk-write-session.js';
import { LockDirectory, type HeldLock, type LockInfo } from './lock.js';
import { CONFIG_BLOB_FILE, MANIFEST_FILE, POINT_ID_PATTERN, type PointManifest } from './manifest.js';
import { MANIFEST_LIMITS, indexFileName, parseManifest } from './manifest-check.js';
import { readBeneath } from './repository-file.js';
import { PointDraft } from './point-draft.js';
import { CONFIG_FILE, newRepositoryConfig, readRepositoryConfig, type RepositoryConfig } from './repository-config.js';
import { RepositoryAccess, type AccessConfig } from './repository-access.js';

/** Creates `root` if needed and lists it; a path that cannot be a repository directory is one clear line. */
async function prepareRootDirectory(root: string): Promise<string[]> {
  try {
    await mkdir(root, { recursive: true });
    return await readdir(root);
  } catch (err) {
    const code = systemErrorCode(err);
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      throw new CairnError('ERR_EXISTS', `${root} exists and is not a directory (or a parent is not); choose a new or empty directory`, {
        repo: root,
      });
    }
    if (code === 'EACCES' || code === 'EROFS') {
      throw new CairnError('ERR_INVALID_ARGUMENT', `cannot create the repository at ${root}: ${(err as Error).message}`, { repo: root });
    }
    throw err;
  }
}

/** Prefix of the lock each running backup holds; GC reads these to know the running writers. */
export const BACKUP_LOCK_PREFIX = 'backup-';

/**
 * A repository on a local directory (docs/formats/repository.md):
 *   config, chunks/<xx>/<digest>, vms/<vm>/<point>/{manifest.json,<disk>.cidx,config.blob}, locks/
 */
export class Repository {
  readonly chunks: FsChunkStore;
  readonly locks: LockDirectory;

  readonly access: RepositoryAccess;

  private constructor(
    readonly root: string,
    readonly config: RepositoryConfig,
  ) {
    this.access = new RepositoryAccess(config.access);
    this.chunks = new FsChunkStore(root, { access: this.access, maxPlainLength: config.chunkSize });
    this.locks = new LockDirectory(join(root, 'locks'), this.access);
  }

  get chunkSize(): number {
    return this.config.chunkSize;
  }

  /**
   * Creates a repository in `root` (created if missing, else it must be an empty directory). It is
   * private to its owner unless `access` names a group that may read it.
   */
  static async init(root: string, chunkSize: number, access?: AccessConfig): Promise<Repository> {
    const config = newRepositoryConfig(chunkSize, access);
    const modes = new RepositoryAccess(config.access);
    const existing = await prepareRootDirectory(root);
    if (existing.includes(CONFIG_FILE)) {
      throw new CairnError('ERR_EXISTS', `a Cairn repository already exists at ${root}`, { repo: root });
    }
    if (existing.length > 0) {
      throw new CairnError('ERR_EXISTS', `${root} is not empty; choose an empty or new directory`, { repo: root });
    }
    await modes.prepareRoot(root);
    for (const dir of ['chunks', 'vms', 'locks']) await modes.mkdir(join(root, dir));
    await writeFileAtomic(join(root, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n', { mode: modes.fileMode('mutable') });
    return new Repository(root, config);
  }

  static async open(root: string): Promise<Repository> {
    return new Repository(root, await readRepositoryConfig(root));
  }

  private vmDir(vm: string): string {
    assertValidName('VM', vm);
    return join(this.root, 'vms', vm);
  }

  private pointDir(vm: string, id: string): string {
    return join(this.vmDir(vm), id);
  }

  async listVms(): Promise<string[]> {
    const names = await readdir(join(this.root, 'vms')).catch((err: unknown) => {
      if (systemErrorCode(err) === 'ENOENT') return [] as string[];
      throw err;
    });
    const vms: string[] = [];
    for (const name of names.sort()) {
      // Not a name Cairn writes (a stray file, or a name that would escape): not a VM.
      if (!isValidName(name)) continue;
      if ((await this.listPointIds(name)).length > 0) vms.push(name);
    }
    return vms;
  }

  /** Published point ids of a VM, oldest first (drafts and trash are hidden). */
  async listPointIds(vm: string): Promise<string[]> {
    try {
      return (await readdir(this.vmDir(vm))).filter((name) => POINT_ID_PATTERN.test(name)).sort();
    } catch (err) {
      if (systemErrorCode(err) === 'ENOENT') return [];
      throw err;
    }
  }

  /** Resolves `latest` or a point id to an existing point id. */
  async resolvePoint(vm: string, point: string): Promise<string> {
    const ids = await this.listPointIds(vm);
    if (ids.length === 0) throw new CairnError('ERR_NOT_FOUND', `VM '${vm}' has no restore points`, { vm });
    if (point === 'latest') return ids[ids.length - 1]!;
    if (!ids.includes(point)) throw new CairnError('ERR_NOT_FOUND', `point '${point}' of VM '${vm}' does not exist`, { vm, point });
    return point;
  }

  async readManifest(vm: string, id: string): Promise<PointManifest> {
    assertValidName('VM', vm);
    if (!POINT_ID_PATTERN.test(id)) throw new CairnError('ERR_INVALID_ARGUMENT', `'${id}' is not a point id`, { vm, point: id });
    const name = `${vm}/${id}/${MANIFEST_FILE}`;
    let data: Buffer;
    try {
      data = await readBeneath(this.root, ['vms', vm, id, MANIFEST_FILE], {
        name: `manifest ${name}`,
        maxBytes: MANIFEST_LIMITS.MAX_MANIFEST_BYTES,
      });
    } catch (err) {
      if (systemErrorCode(err) === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `point '${vm}/${id}' does not exist`, { vm, point: id });
      throw err;
    }
    return parseManifest(data.toString('utf8'), name, { vm, id, chunkSize: this.chunkSize });
  }

  /**
   * Reads a disk's index and checks it against the manifest: its size against what the disk size
   * allows (before reading), its digest, and the disk and chunk size it records. The file read is
   * always `<disk>.cidx` of the point's own directory, whatever the manifest object says.
   */
  async readDiskIndex(manifest: PointManifest, disk: string): Promise<DiskIndex> {
    const entry = manifest.disks.find((d) => d.name === disk);
    if (!entry) {
      throw new CairnError('ERR_NOT_FOUND', `point '${manifest.vm}/${manifest.id}' has no disk '${disk}'`, {
        vm: manifest.vm,
        point: manifest.id,
        disk,
      });
    }
    const file = indexFileName(disk);
    const name = `${manifest.vm}/${manifest.id}/${file}`;
    const bounds = indexFileBounds(entry.size, this.chunkSize);
    if (!Number.isSafeInteger(entry.size) || entry.size < 0 || bounds.minBytes > DISK_INDEX.MAX_FILE_BYTES) {
      const manifestName = `${manifest.vm}/${manifest.id}/${MANIFEST_FILE}`;
      throw new CairnError(
        'ERR_FORMAT_INVALID',
        `manifest ${manifestName} is damaged: disk '${disk}' of ${entry.size} bytes needs an index larger than ${DISK_INDEX.MAX_FILE_BYTES} bytes`,
        { file: manifestName },
      );
    }
    const data = await readBeneath(this.root, ['vms', manifest.vm, manifest.id, file], {
      name: `index ${name}`,
      minBytes: bounds.minBytes,
      maxBytes: Math.min(bounds.maxBytes, DISK_INDEX.MAX_FILE_BYTES),
    }).catch((err: unknown) => {
      if (err instanceof CairnError) throw err;
      throw new CairnError('ERR_FORMAT_INVALID', `index ${name} cannot be read: ${(err as Error).message}`, { file: name }, { cause: err });
    });
    if (sha256Hex(data) !== entry.indexSha256) {
      throw new CairnError('ERR_FORMAT_INVALID', `index ${name} is damaged: it does not match the manifest's digest`, { file: name });
    }
    const index = decodeDiskIndex(data, name);
    if (index.diskSize !== entry.size)
      throw new CairnError('ERR_FORMAT_INVALID', `index ${name} disagrees with the manifest on the disk size`, { file: name });
    if (index.chunkSize !== this.chunkSize)
      throw new CairnError('ERR_FORMAT_INVALID', `index ${name} uses another chunk size than the repository`, { file: name });
    return index;
  }

  /** The point's configuration blob: always `config.blob` of its directory, exactly the recorded size. */
  async readConfigBlob(manifest: PointManifest): Promise<Buffer | undefined> {
    if (!manifest.config) return undefined;
    const name = `${manifest.vm}/${manifest.id}/${CONFIG_BLOB_FILE}`;
    const size = manifest.config.size;
    if (!Number.isSafeInteger(size) || size < 0 || size > MANIFEST_LIMITS.MAX_CONFIG_BLOB_BYTES) {
      throw new CairnError('ERR_FORMAT_INVALID', `configuration blob ${name} has an impossible size ${size}`, { file: name });
    }
    const blob = await readBeneath(this.root, ['vms', manifest.vm, manifest.id, CONFIG_BLOB_FILE], {
      name: `configuration blob ${name}`,
      minBytes: size,
      maxBytes: size,
    }).catch((err: unknown) => {
      if (err instanceof CairnError) throw err;
      throw new CairnError(
        'ERR_FORMAT_INVALID',
        `configuration blob ${name} cannot be read: ${(err as Error).message}`,
        { file: name },
        { cause: err },
      );
    });
    if (sha256Hex(blob) !== manifest.config.sha256) {
      throw new CairnError('ERR_FORMAT_INVALID', `configuration blob ${name} is damaged`, { file: name });
    }
    return blob;
  }

  /** Takes the per-VM backup lock: a second backup of the same VM is refused while one runs. */
  async lockVmForBackup(vm: string, onStale?: (info: LockInfo | undefined) => void): Promise<HeldLock> {
    assertValidName('VM', vm);
    return this.locks.acquire(`${BACKUP_LOCK_PREFIX}${vm}`, `backup of VM '${vm}'`, onStale);
  }

  /** The chunk store as one backup writes it: chunks it created can be taken back if it fails. */
  startChunkWrites(lock: HeldLock): ChunkWriteSession {
    return new ChunkWriteSession(this.chunks, lock.info.startedMs);
  }

  async runningWriters(): Promise<LockInfo[]> {
    return this.locks.holders(BACKUP_LOCK_PREFIX);
  }

  async createDraft(vm: string): Promise<PointDraft> {
    const vmDir = this.vmDir(vm);
    try {
      await this.access.mkdir(join(this.root, 'vms'));
      await this.access.mkdir(vmDir);
    } catch (err) {
      throw translateWriteError(err, vmDir);
    }
    await this.assertRealDirectories(['vms', vm]);
    return PointDraft.create(vm, vmDir, this.access);
  }

  /**
   * Refuses as damage a symlink (or anything but a directory) where a write or a removal is about
   * to act: a repository's writer must not point `vms/<vm>` elsewhere and have a backup write, or
   * `rm` delete, outside the repository. Reads need no such check (repository-file.ts).
   */
  private async assertRealDirectories(parts: string[]): Promise<void> {
    for (let n = 1; n <= parts.length; n++) {
      const name = parts.slice(0, n).join('/');
      const info = await lstat(join(this.root, ...parts.slice(0, n)));
      if (!info.isDirectory()) {
        throw new CairnError('ERR_FORMAT_INVALID', `${name} in the repository is damaged: it is not a directory (a symbolic link?)`, {
          file: name,
        });
      }
    }
  }

  /** Removes a point: renamed away first (it disappears atomically), then deleted. */
  async removePoint(vm: string, id: string): Promise<void> {
    await this.resolvePoint(vm, id);
    await this.assertRealDirectories(['vms', vm, id]);
    const trash = join(this.vmDir(vm), `.trash-${id}-${process.pid}`);
    await rename(this.pointDir(vm, id), trash);
    await rm(trash, { recursive: true, force: true });
  }

  async removeVm(vm: string): Promise<number> {
    const ids = await this.listPointIds(vm);
    if (ids.length === 0) throw new CairnError('ERR_NOT_FOUND', `VM '${vm}' has no restore points`, { vm });
    for (const id of ids) await this.removePoint(vm, id);
    return ids.length;
  }

  /** Leftover drafts and trash of dead writers (hidden directories in the VMs' folders). */
  async listLeftovers(): Promise<string[]> {
    const result: string[] = [];
    // Directories only (readdir's types do not follow symlinks): gc removes these recursively.
    const vms = await readdir(join(this.root, 'vms'), { withFileTypes: true }).catch(() => []);
    for (const vm of vms) {
      if (!vm.isDirectory()) continue;
      const entries = await readdir(join(this.root, 'vms', vm.name), { withFileTypes: true }).catch(() => []);
      for (const { name } of entries) {
        if (name.startsWith('.tmp-point-') || name.startsWith('.trash-')) result.push(join(this.root, 'vms', vm.name, name));
      }
    }
    return result;
  }

  async filesystemSpace(): Promise<{ totalBytes: number; freeBytes: number }> {
    const info = await statfs(this.root);
    return { totalBytes: info.blocks * info.bsize, freeBytes: info.bavail * info.bsize };
  }
}
