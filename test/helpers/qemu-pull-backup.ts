// Helpers for pull-backup integration tests: a repository, a backup from a DiskSource through the
// real point writer, reading a point back through the real catalog, and the dirty map as nbdinfo sees it.
import type { Extent } from '../../src/core/extent.js';
import type { ChangedBlocks } from '../../src/core/changed-blocks.js';
import type { DiskSource, ExtentPlan } from '../../src/ingest/disk-source.js';
import { runBackup, type BackupResult } from '../../src/ingest/backup.js';
import { openRepositoryCatalog } from '../../src/restore/index.js';
import { Repository } from '../../src/store/repository.js';
import { run } from './qemu-process.js';

export async function initRepo(dir: string, chunkSize = 256 * 1024): Promise<Repository> {
  return Repository.init(dir, chunkSize);
}

export async function backupOne(
  repo: Repository,
  vm: string,
  disk: string,
  source: DiskSource,
  opts: { base?: string; config?: Buffer; changedBlocks?: ChangedBlocks } = {},
): Promise<BackupResult> {
  try {
    return await runBackup({
      repo,
      vm,
      disks: [{ name: disk, source, ...(opts.changedBlocks ? { changedBlocks: opts.changedBlocks } : {}) }],
      ...(opts.base ? { base: opts.base } : {}),
      ...(opts.config ? { config: opts.config } : {}),
    });
  } finally {
    await source.close();
  }
}

/** The whole disk of a point, read back through the catalog (verifying every chunk digest). */
export async function readPoint(repoDir: string, vm: string, point: string, disk: string): Promise<Buffer> {
  const catalog = await openRepositoryCatalog(repoDir);
  const reader = await catalog.openDisk(vm, point, disk);
  const out = Buffer.alloc(reader.size);
  for (let at = 0; at < reader.size; at += 4 * 1024 * 1024) {
    const n = Math.min(4 * 1024 * 1024, reader.size - at);
    (await reader.read(at, n)).copy(out, at);
  }
  return out;
}

/** Dirty ranges of an export's qemu:dirty-bitmap:NAME context, as libnbd's nbdinfo reports them. */
export async function dirtyRanges(uri: string, bitmap: string): Promise<Array<[number, number]>> {
  const map = JSON.parse(await run('nbdinfo', [`--map=qemu:dirty-bitmap:${bitmap}`, '--json', uri])) as Array<{
    offset: number;
    length: number;
    type: number;
  }>;
  return map.filter((e) => e.type & 1).map((e) => [e.offset, e.offset + e.length]);
}

export function insideAny(offset: number, length: number, ranges: Array<[number, number]>): boolean {
  return ranges.some(([s, e]) => offset >= s && offset + length <= e);
}

/**
 * Passes a source through, remembering every extent it yields and running `afterFirstData` once the
 * first data extent is out (to change the guest while the backup runs).
 */
export class RecordingSource implements DiskSource {
  readonly extentsSeen: Extent[] = [];
  readonly acknowledged: Array<[number, number]> = [];

  constructor(
    readonly inner: DiskSource,
    private readonly afterFirstData?: () => Promise<void>,
  ) {}

  get description(): string {
    return this.inner.description;
  }
  get size(): number | undefined {
    return this.inner.size;
  }
  get bytesRead(): number {
    return this.inner.bytesRead;
  }
  get wantsAcknowledgement(): boolean | undefined {
    return this.inner.wantsAcknowledgement;
  }

  async *extents(plan: ExtentPlan): AsyncIterable<Extent> {
    let hooked = false;
    for await (const e of this.inner.extents(plan)) {
      this.extentsSeen.push({ offset: e.offset, length: e.length, kind: e.kind });
      yield e;
      if (!hooked && e.kind === 'data' && this.afterFirstData) {
        hooked = true;
        await this.afterFirstData();
      }
    }
  }

  async acknowledgeStored(offset: number, length: number): Promise<void> {
    this.acknowledged.push([offset, length]);
    await this.inner.acknowledgeStored?.(offset, length);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Sum of extent lengths by kind, for assertions on what was read versus recorded. */
export function bytesByKind(extents: Extent[]): Record<'data' | 'zero' | 'unchanged', number> {
  const out = { data: 0, zero: 0, unchanged: 0 };
  for (const e of extents) out[e.kind] += e.length;
  return out;
}
