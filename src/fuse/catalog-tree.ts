import type { BlockReader } from '../core/block-reader.js';
import type { Catalog, PointInfo } from '../core/catalog.js';
import { CairnError, isCairnError } from '../core/errors.js';
import { PartitionReader, readPartitionTable, type PartitionTable } from '../guest/index.js';
import type { Logger } from '../log/index.js';
import { BufferReader } from './buffer-reader.js';
import { TtlCache } from './ttl-cache.js';

/** What a path in the mounted tree is. Files open to a BlockReader (disk, partition or config blob). */
export type TreeNode =
  | { kind: 'dir'; mtimeMs: number }
  | { kind: 'symlink'; target: string; mtimeMs: number }
  | { kind: 'file'; size: number; mtimeMs: number; open: () => Promise<BlockReader> };

export const RAW_SUFFIX = '.raw';
export const LATEST = 'latest';
export const CONFIG_FILE = 'config';
const PARTITION_FILE = /^p([1-9][0-9]{0,3})\.raw$/;

/** Listings may be this stale: new points appear and removed ones vanish within about a second. */
const LISTING_TTL_MS = 1000;
/** Restore points never change once published, so per-point data is kept until evicted by count. */
const IMMUTABLE_TTL_MS = Number.POSITIVE_INFINITY;

function notFound(path: string): CairnError {
  return new CairnError('ERR_NOT_FOUND', `no such entry: ${path}`, { path });
}

/**
 * The FUSE tree over a Catalog, in the names of the pseudo-URLs:
 * `VM/latest → POINT`, `VM/POINT/DISK.raw`, `VM/POINT/DISK/pN.raw`, `VM/POINT/config`.
 * Everything is looked up in the catalog on demand, so the tree follows the repository.
 */
export class CatalogTree {
  private readonly vms = new TtlCache<string[]>(LISTING_TTL_MS, 1);
  private readonly points = new TtlCache<PointInfo[]>(LISTING_TTL_MS);
  private readonly readers = new TtlCache<BlockReader>(IMMUTABLE_TTL_MS, 64);
  private readonly tables = new TtlCache<PartitionTable | undefined>(IMMUTABLE_TTL_MS, 256);
  private readonly configs = new TtlCache<Buffer | undefined>(IMMUTABLE_TTL_MS, 32);
  readonly mountedMs = Date.now();

  constructor(
    private readonly catalog: Catalog,
    private readonly log: Logger,
  ) {}

  private listVms(): Promise<string[]> {
    return this.vms.get('', () => this.catalog.listVms());
  }

  private async listPoints(vm: string): Promise<PointInfo[]> {
    if (!(await this.listVms()).includes(vm)) throw notFound(vm);
    return this.points.get(vm, () => this.catalog.listPoints(vm));
  }

  private async point(vm: string, id: string): Promise<PointInfo> {
    const found = (await this.listPoints(vm)).find((p) => p.id === id);
    if (!found) throw notFound(`${vm}/${id}`);
    return found;
  }

  private openDisk(point: PointInfo, disk: string): Promise<BlockReader> {
    return this.readers.get(`${point.vm}/${point.id}/${disk}`, () => this.catalog.openDisk(point.vm, point.id, disk));
  }

  /**
   * The disk's partition table, or undefined (logged once) when the table is invalid. Damaged or
   * unreadable data under the table is not remembered: it fails this listing with EIO and is retried.
   */
  private partitionTable(point: PointInfo, disk: string): Promise<PartitionTable | undefined> {
    const key = `${point.vm}/${point.id}/${disk}`;
    return this.tables.get(key, async () => {
      try {
        const table = await readPartitionTable(await this.openDisk(point, disk));
        for (const warning of table.warnings) this.log.warn({ disk: key }, `${key}: ${warning}`);
        return table;
      } catch (err) {
        if (!isCairnError(err, 'ERR_FORMAT_INVALID')) throw err;
        this.log.warn({ disk: key, code: err.code, ...err.context }, `${key}: partitions not shown: ${err.message}`);
        return undefined;
      }
    });
  }

  private config(point: PointInfo): Promise<Buffer | undefined> {
    return this.configs.get(`${point.vm}/${point.id}`, () => this.catalog.readConfig(point.vm, point.id));
  }

  /** Names in a directory; ERR_NOT_FOUND or ENOTDIR-like errors for anything else. */
  async list(path: string): Promise<string[]> {
    const parts = splitPath(path);
    const [vm, pointId, disk] = parts;
    if (vm === undefined) return this.listVms();
    if (pointId === undefined) {
      const points = await this.listPoints(vm);
      return [...points.map((p) => p.id), ...(points.length > 0 ? [LATEST] : [])];
    }
    if (pointId === LATEST) throw notFound(path); // a symlink; the kernel follows it
    const point = await this.point(vm, pointId);
    if (disk === undefined) {
      const names = point.disks.flatMap((d) => [d.name + RAW_SUFFIX, d.name]);
      if (point.hasConfig) names.push(CONFIG_FILE);
      return names;
    }
    if (parts.length > 3 || !point.disks.some((d) => d.name === disk)) throw notFound(path);
    const table = await this.partitionTable(point, disk);
    return (table?.partitions ?? []).map((p) => `p${p.number}${RAW_SUFFIX}`);
  }

  async lookup(path: string): Promise<TreeNode> {
    const parts = splitPath(path);
    const [vm, pointId, name, partName] = parts;
    if (vm === undefined) return { kind: 'dir', mtimeMs: this.mountedMs };
    const points = await this.listPoints(vm);
    const newest = points[points.length - 1];
    if (pointId === undefined) return { kind: 'dir', mtimeMs: newest?.createdMs ?? this.mountedMs };
    if (pointId === LATEST) {
      if (!newest || parts.length > 2) throw notFound(path);
      return { kind: 'symlink', target: newest.id, mtimeMs: newest.createdMs };
    }
    const point = await this.point(vm, pointId);
    const mtimeMs = point.createdMs;
    if (name === undefined) return { kind: 'dir', mtimeMs };
    if (parts.length === 3) {
      if (name === CONFIG_FILE && point.hasConfig) {
        const blob = (await this.config(point)) ?? Buffer.alloc(0);
        return { kind: 'file', size: blob.length, mtimeMs, open: async () => new BufferReader(blob) };
      }
      if (name.endsWith(RAW_SUFFIX)) {
        const disk = point.disks.find((d) => d.name + RAW_SUFFIX === name);
        if (disk) return { kind: 'file', size: disk.size, mtimeMs, open: () => this.openDisk(point, disk.name) };
      }
      if (point.disks.some((d) => d.name === name)) return { kind: 'dir', mtimeMs };
      throw notFound(path);
    }
    const match = partName !== undefined && parts.length === 4 ? PARTITION_FILE.exec(partName) : null;
    if (!match || !point.disks.some((d) => d.name === name)) throw notFound(path);
    const number = Number(match[1]);
    const entry = (await this.partitionTable(point, name!))?.partitions.find((p) => p.number === number);
    if (!entry) throw notFound(path);
    return {
      kind: 'file',
      size: entry.length,
      mtimeMs,
      open: async () => new PartitionReader(await this.openDisk(point, name!), entry.offset, entry.length),
    };
  }
}

export function splitPath(path: string): string[] {
  return path.split('/').filter((p) => p !== '');
}
