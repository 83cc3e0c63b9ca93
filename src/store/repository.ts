import { mkdir, readFile, readdir, rename, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError, systemErrorCode } from '../core/errors.js';
import { assertValidName } from '../url/cairn-url.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { sha256Hex } from './chunk-format.js';
import { decodeDiskIndex, type DiskIndex } from './disk-index.js';
import { FsChunkStore } from './fs-chunk-store.js';
import { LockDirectory, type HeldLock, type LockInfo } from './lock.js';
import { CONFIG_BLOB_FILE, MANIFEST_FILE, POINT_ID_PATTERN, decodeManifest, type PointManifest } from './manifest.js';
import { PointDraft } from './point-draft.js';
import { CONFIG_FILE, newRepositoryConfig, readRepositoryConfig, type RepositoryConfig } from './repository-config.js';

/** Prefix of the lock each running backup holds; GC reads these to know the running writers. */
export const BACKUP_LOCK_PREFIX = 'backup-';

/**
 * A repository on a local directory (docs/formats/repository.md):
 *   config, chunks/<xx>/<digest>, vms/<vm>/<point>/{manifest.json,<disk>.cidx,config.blob}, locks/
 */
export class Repository {
  readonly chunks: FsChunkStore;
  readonly locks: LockDirectory;

  private constructor(
    readonly root: string,
    readonly config: RepositoryConfig,
  ) {
    this.chunks = new FsChunkStore(root);
    this.locks = new LockDirectory(join(root, 'locks'));
  }

  get chunkSize(): number {
    return this.config.chunkSize;
  }

  static async init(root: string, chunkSize: number): Promise<Repository> {
    const config = newRepositoryConfig(chunkSize);
    await mkdir(root, { recursive: true });
    const existing = await readdir(root);
    if (existing.includes(CONFIG_FILE)) {
      throw new CairnError('ERR_EXISTS', `a Cairn repository already exists at ${root}`, { repo: root });
    }
    if (existing.length > 0) {
      throw new CairnError('ERR_EXISTS', `${root} is not empty; choose an empty or new directory`, { repo: root });
    }
    for (const dir of ['chunks', 'vms', 'locks']) await mkdir(join(root, dir));
    await writeFileAtomic(join(root, CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
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
      if (name.startsWith('.')) continue;
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
    const file = join(this.pointDir(vm, id), MANIFEST_FILE);
    try {
      return decodeManifest(await readFile(file, 'utf8'), `${vm}/${id}/${MANIFEST_FILE}`);
    } catch (err) {
      if (systemErrorCode(err) === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `point '${vm}/${id}' does not exist`, { vm, point: id });
      throw err;
    }
  }

  /** Reads a disk's index and checks it against the digest the manifest recorded. */
  async readDiskIndex(manifest: PointManifest, disk: string): Promise<DiskIndex> {
    const entry = manifest.disks.find((d) => d.name === disk);
    if (!entry) {
      throw new CairnError('ERR_NOT_FOUND', `point '${manifest.vm}/${manifest.id}' has no disk '${disk}'`, {
        vm: manifest.vm,
        point: manifest.id,
        disk,
      });
    }
    const name = `${manifest.vm}/${manifest.id}/${entry.index}`;
    const file = await readFile(join(this.pointDir(manifest.vm, manifest.id), entry.index)).catch((err: unknown) => {
      throw new CairnError('ERR_FORMAT_INVALID', `index ${name} cannot be read: ${(err as Error).message}`, { file: name }, { cause: err });
    });
    if (sha256Hex(file) !== entry.indexSha256) {
      throw new CairnError('ERR_FORMAT_INVALID', `index ${name} is damaged: it does not match the manifest's digest`, { file: name });
    }
    const index = decodeDiskIndex(file, name);
    if (index.diskSize !== entry.size)
      throw new CairnError('ERR_FORMAT_INVALID', `index ${name} disagrees with the manifest on the disk size`, { file: name });
    return index;
  }

  async readConfigBlob(manifest: PointManifest): Promise<Buffer | undefined> {
    if (!manifest.config) return undefined;
    const name = `${manifest.vm}/${manifest.id}/${CONFIG_BLOB_FILE}`;
    const blob = await readFile(join(this.pointDir(manifest.vm, manifest.id), manifest.config.file));
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

  async runningWriters(): Promise<LockInfo[]> {
    return this.locks.holders(BACKUP_LOCK_PREFIX);
  }

  async createDraft(vm: string): Promise<PointDraft> {
    return PointDraft.create(vm, this.vmDir(vm));
  }

  /** Removes a point: renamed away first (it disappears atomically), then deleted. */
  async removePoint(vm: string, id: string): Promise<void> {
    await this.resolvePoint(vm, id);
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
    const vms = await readdir(join(this.root, 'vms')).catch(() => [] as string[]);
    for (const vm of vms) {
      const names = await readdir(join(this.root, 'vms', vm)).catch(() => [] as string[]);
      for (const name of names) {
        if (name.startsWith('.tmp-point-') || name.startsWith('.trash-')) result.push(join(this.root, 'vms', vm, name));
      }
    }
    return result;
  }

  async filesystemSpace(): Promise<{ totalBytes: number; freeBytes: number }> {
    const info = await statfs(this.root);
    return { totalBytes: info.blocks * info.bsize, freeBytes: info.bavail * info.bsize };
  }
}
