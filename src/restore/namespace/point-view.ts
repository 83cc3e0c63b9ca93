import type { BlockReader } from '../../core/block-reader.js';
import type { Catalog, PointInfo } from '../../core/catalog.js';
import { CairnError, isCairnError } from '../../core/errors.js';
import type { GuestFileSystem } from '../../core/guest-filesystem.js';
import { probeFileSystem } from '../../guest/fs/drivers.js';
import { PartitionReader, readPartitionTable, type PartitionTable } from '../../guest/index.js';
import { assembleVolumeGroups, findLogicalVolume, scanPhysicalVolume, type LvmScan, type VolumeGroup } from '../../guest/lvm/index.js';
import type { Volume } from './nodes.js';

/** What a volume holds, as far as Cairn reads it. */
export type VolumeContent =
  | { readonly kind: 'partitioned'; readonly table: PartitionTable; readonly partitions: readonly Volume[] }
  | { readonly kind: 'filesystem'; readonly fs: GuestFileSystem }
  /** An LVM physical volume: its logical volumes are under `DISK/lvm/`. */
  | { readonly kind: 'lvm-pv' }
  /** Nothing Cairn can show inside (no signature, an unsupported or damaged filesystem): the raw image only. */
  | { readonly kind: 'raw'; readonly reason: CairnError };

export interface PointViewOptions {
  /** Metadata cache of each opened guest filesystem. */
  readonly metadataCacheBytes: number;
  /** Problems worth a log line that do not stop anything (a damaged partition table, an unsupported filesystem). */
  readonly warn: (message: string, context: Record<string, unknown>) => void;
}

/**
 * Everything under one restore point: its disks, their partition tables, and the filesystems on its
 * volumes, each discovered once (a point never changes) and shared by every path that reaches it.
 * Failures that come from damaged chunks are not remembered, so a later read can retry; what a
 * structure says about itself (no table, an unsupported filesystem) is.
 */
export class PointView {
  private readonly disks = new Map<string, Promise<BlockReader>>();
  private readonly contents = new Map<string, Promise<VolumeContent>>();
  private lvmScan: Promise<{ scan: LvmScan; diskOf: Map<string, string> }> | undefined;

  constructor(
    private readonly catalog: Catalog,
    readonly point: PointInfo,
    private readonly options: PointViewOptions,
  ) {}

  /** `VM/POINT` with the id spelled out. */
  get label(): string {
    return `${this.point.vm}/${this.point.id}`;
  }

  diskVolume(name: string): Volume | undefined {
    const disk = this.point.disks.find((d) => d.name === name);
    if (!disk) return undefined;
    return { kind: 'disk', disk: name, segments: [], size: disk.size, label: `${this.label}/${name}`, open: () => this.openDisk(name) };
  }

  private openDisk(name: string): Promise<BlockReader> {
    return remember(this.disks, name, () => this.catalog.openDisk(this.point.vm, this.point.id, name));
  }

  /** What the volume holds; discovered on first use. */
  content(volume: Volume): Promise<VolumeContent> {
    return remember(this.contents, volume.label, () => this.discover(volume));
  }

  private async discover(volume: Volume): Promise<VolumeContent> {
    const reader = await volume.open();
    if (volume.kind === 'disk') {
      const table = await this.partitionTable(volume, reader);
      if (table && table.kind !== 'none') return { kind: 'partitioned', table, partitions: this.partitionVolumes(volume, table) };
    }
    if (volume.kind !== 'lv' && (await scanPhysicalVolume(reader).catch(() => undefined))) return { kind: 'lvm-pv' };
    return this.fileSystemOf(volume, reader);
  }

  /**
   * Every LVM volume group with a physical volume on the point's disks or their partitions, found
   * once: a group may span several disks, so all of them are scanned together.
   */
  private lvm(): Promise<{ scan: LvmScan; diskOf: Map<string, string> }> {
    const pending = (this.lvmScan ??= this.scanLvm());
    pending.catch(() => {
      if (this.lvmScan === pending) this.lvmScan = undefined;
    });
    return pending;
  }

  private async scanLvm(): Promise<{ scan: LvmScan; diskOf: Map<string, string> }> {
    const candidates: { name: string; reader: BlockReader }[] = [];
    const diskOf = new Map<string, string>();
    for (const disk of this.point.disks) {
      const volume = this.diskVolume(disk.name)!;
      const content = await this.content(volume);
      const volumes = content.kind === 'partitioned' ? content.partitions : [volume];
      for (const candidate of volumes) {
        if ((await this.content(candidate)).kind !== 'lvm-pv') continue;
        candidates.push({ name: candidate.label, reader: await candidate.open() });
        diskOf.set(candidate.label, disk.name);
      }
    }
    const scan = await assembleVolumeGroups(candidates);
    for (const problem of scan.problems) this.options.warn(`${this.label}: LVM: ${problem.message}`, { point: this.label });
    return { scan, diskOf };
  }

  /** Volume groups with at least one physical volume on `disk` (a partition of it, or the disk itself). */
  async volumeGroupsOn(disk: string): Promise<VolumeGroup[]> {
    const { scan, diskOf } = await this.lvm();
    return scan.volumeGroups.filter((vg) =>
      vg.physicalVolumes.some((pv) => pv.candidate !== undefined && diskOf.get(pv.candidate) === disk),
    );
  }

  /** The logical volume `vg/lv` as a volume named under `disk`. */
  async logicalVolume(disk: string, vg: string, lv: string): Promise<Volume> {
    const { scan } = await this.lvm();
    const found = findLogicalVolume(scan, vg, lv);
    return {
      kind: 'lv',
      disk,
      segments: ['lvm', vg, lv],
      size: found.size,
      label: `${this.label}/${disk}/lvm/${vg}/${lv}`,
      open: async () => found.open(),
    };
  }

  private async partitionTable(volume: Volume, reader: BlockReader): Promise<PartitionTable | undefined> {
    try {
      const table = await readPartitionTable(reader);
      for (const warning of table.warnings) this.options.warn(`${volume.label}: ${warning}`, { volume: volume.label });
      return table;
    } catch (err) {
      if (!isCairnError(err, 'ERR_FORMAT_INVALID')) throw err;
      this.options.warn(`${volume.label}: partitions not shown: ${err.message}`, { volume: volume.label, ...err.context });
      return undefined;
    }
  }

  private partitionVolumes(disk: Volume, table: PartitionTable): Volume[] {
    return table.partitions.map((entry) => ({
      kind: 'partition' as const,
      disk: disk.disk,
      segments: [`p${entry.number}`],
      size: entry.length,
      label: `${disk.label}/p${entry.number}`,
      open: async () => new PartitionReader(await disk.open(), entry.offset, entry.length),
    }));
  }

  private async fileSystemOf(volume: Volume, reader: BlockReader): Promise<VolumeContent> {
    const driver = await probeFileSystem(reader);
    if (!driver) {
      return {
        kind: 'raw',
        reason: new CairnError('ERR_UNSUPPORTED', `${volume.label}: no filesystem Cairn can read (its raw image is still available)`, {
          volume: volume.label,
        }),
      };
    }
    try {
      const fs = await driver.open(reader, { name: volume.label, metadataCacheBytes: this.options.metadataCacheBytes });
      return { kind: 'filesystem', fs };
    } catch (err) {
      // A filesystem that says it is damaged or uses a feature Cairn lacks stays so; damaged chunks are retried.
      if (isCairnError(err, 'ERR_UNSUPPORTED') || isCairnError(err, 'ERR_FORMAT_INVALID')) {
        this.options.warn(`${volume.label}: ${driver.type} filesystem not shown: ${err.message}`, { volume: volume.label });
        return { kind: 'raw', reason: err };
      }
      throw err;
    }
  }
}

/** A memo that forgets failures, so that a damaged chunk read once does not poison the view. */
function remember<V>(memo: Map<string, Promise<V>>, key: string, load: () => Promise<V>): Promise<V> {
  let pending = memo.get(key);
  if (!pending) {
    pending = load();
    memo.set(key, pending);
    pending.catch(() => {
      if (memo.get(key) === pending) memo.delete(key);
    });
  }
  return pending;
}
