import type { BlockReader, ChangeMap } from '../../core/block-reader.js';
import type { Catalog, PointInfo } from '../../core/catalog.js';
import { CairnError, isCairnError } from '../../core/errors.js';
import { formatCairnPath, parseCairnUrl, type CairnUrl } from '../../url/cairn-url.js';

/**
 * Opens the BlockReader a (point-resolved) URL names. The composition root passes one over src/restore's
 * namespace (disks, partitions, logical volumes); nbd sits below restore, so it cannot import it itself.
 */
export type ExportReaderOpener = (catalog: Catalog, url: CairnUrl) => Promise<BlockReader>;

/** Whole disks only: what a Catalog offers by itself. */
export const openWholeDisk: ExportReaderOpener = async (catalog, url) => {
  if (url.rest !== undefined) {
    throw new CairnError('ERR_NOT_FOUND', `volume exports are not available here: ${formatCairnPath(url)}`, {
      url: formatCairnPath(url),
    });
  }
  return catalog.openDisk(url.vm!, url.point!, url.disk!);
};

export interface ExportListing {
  name: string;
  description: string;
}

/** One export, resolved at open time: `latest` is pinned to a point id for the whole connection. */
export interface ResolvedExport {
  /** The name the client asked for. */
  name: string;
  /** The same export with the point id spelled out. */
  canonicalName: string;
  vm: string;
  point: PointInfo;
  disk: string;
  /** The volume inside the disk (`p1`, `lvm/VG/LV`), when the export is not the whole disk. */
  volume?: string;
  reader: BlockReader;
  description: string;
}

/**
 * Maps NBD export names (`VM/POINT/DISK[/pN]`, POINT may be `latest`) onto BlockReaders from a
 * Catalog. Nothing is cached here: points created while the server runs appear on the next lookup,
 * and the data cache lives in the catalog's disk readers.
 */
export class ExportRegistry {
  constructor(
    private readonly catalog: Catalog,
    private readonly openReader: ExportReaderOpener = openWholeDisk,
  ) {}

  /** Every disk of every point, plus `VM/latest/DISK` for each disk of a VM's newest point. */
  async list(): Promise<ExportListing[]> {
    const out: ExportListing[] = [];
    for (const vm of await this.catalog.listVms()) {
      let points: PointInfo[];
      try {
        points = await this.catalog.listPoints(vm);
      } catch (err) {
        if (isCairnError(err, 'ERR_NOT_FOUND')) continue; // VM pruned while listing
        throw err;
      }
      for (const point of points) {
        for (const disk of point.disks) {
          out.push({ name: `${vm}/${point.id}/${disk.name}`, description: describe(vm, point, disk.name) });
        }
      }
      const latest = points[points.length - 1];
      if (latest) {
        for (const disk of latest.disks) {
          out.push({ name: `${vm}/latest/${disk.name}`, description: `latest: ${describe(vm, latest, disk.name)}` });
        }
      }
    }
    return out;
  }

  /** ERR_NOT_FOUND for unknown names; ERR_INVALID_ARGUMENT for names that are not disk paths. */
  async open(name: string): Promise<ResolvedExport> {
    const url = parseExportName(name);
    const point = await this.catalog.getPoint(url.vm, url.point);
    if (!point.disks.some((d) => d.name === url.disk)) {
      throw new CairnError('ERR_NOT_FOUND', `restore point ${url.vm}/${point.id} has no disk '${url.disk}'`, { name });
    }
    const pinned: CairnUrl = { ...url, point: point.id };
    const reader = await this.openReader(this.catalog, pinned);
    const volume = url.rest?.join('/');
    return {
      name,
      canonicalName: formatCairnPath(pinned),
      vm: url.vm,
      point,
      disk: url.disk,
      ...(volume !== undefined ? { volume } : {}),
      reader,
      description: describe(url.vm, point, url.disk) + (volume !== undefined ? `, volume ${volume}` : ''),
    };
  }

  /** Points of the same VM, other than the export's own, that hold the same disk (candidates for `cairn:changed:`). */
  async comparablePoints(exp: ResolvedExport): Promise<PointInfo[]> {
    if (exp.volume !== undefined) return [];
    const points = await this.catalog.listPoints(exp.vm);
    return points.filter((p) => p.id !== exp.point.id && p.disks.some((d) => d.name === exp.disk));
  }

  /** The change map against `sincePoint`, or undefined when that is this same point or lacks this disk. */
  async changeMap(exp: ResolvedExport, sincePoint: string): Promise<ChangeMap | undefined> {
    if (exp.volume !== undefined) return undefined;
    let since: PointInfo;
    try {
      since = await this.catalog.getPoint(exp.vm, sincePoint);
    } catch (err) {
      if (isCairnError(err, 'ERR_NOT_FOUND') || isCairnError(err, 'ERR_INVALID_ARGUMENT')) return undefined;
      throw err;
    }
    if (since.id === exp.point.id || !since.disks.some((d) => d.name === exp.disk)) return undefined;
    return this.catalog.changesSince(exp.vm, exp.point.id, exp.disk, since.id);
  }
}

function describe(vm: string, point: PointInfo, disk: string): string {
  return `VM ${vm}, point ${point.id} (${new Date(point.createdMs).toISOString()}), disk ${disk}`;
}

function parseExportName(name: string): CairnUrl & { vm: string; point: string; disk: string } {
  let url: CairnUrl;
  try {
    url = parseCairnUrl(name);
  } catch (err) {
    throw new CairnError('ERR_NOT_FOUND', `no export named '${name}'`, { name }, { cause: err });
  }
  if (url.vm === undefined || url.point === undefined || url.disk === undefined || name.startsWith('cairn:')) {
    throw new CairnError('ERR_NOT_FOUND', `no export named '${name}': expected VM/POINT/DISK[/pN | /lvm/VG/LV]`, { name });
  }
  return url as CairnUrl & { vm: string; point: string; disk: string };
}
