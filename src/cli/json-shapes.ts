import type { DiskInfo, PointInfo } from '../core/catalog.js';

/**
 * The one `--json` shape of each thing the CLI prints (README, "JSON output"): a VM, a point and a
 * disk look the same in every command. Names follow the pseudo-URL (`vm`, `point`, `disk`), times
 * are ISO 8601 in UTC, and a field that can be empty is present as null rather than left out.
 */
export interface VmJson {
  vm: string;
  url: string;
  points: number;
  latest: string | null;
}

export interface DiskJson {
  vm: string;
  point: string;
  disk: string;
  url: string;
  size: number;
}

export interface PointJson {
  vm: string;
  point: string;
  url: string;
  created: string;
  parent: string | null;
  source: string;
  hasConfig: boolean;
  disks: DiskJson[];
}

export const isoTime = (ms: number): string => new Date(ms).toISOString();

export function vmJson(vm: string, pointIds: readonly string[]): VmJson {
  return { vm, url: `cairn://${vm}`, points: pointIds.length, latest: pointIds[pointIds.length - 1] ?? null };
}

export function diskJson(vm: string, point: string, disk: DiskInfo): DiskJson {
  return { vm, point, disk: disk.name, url: `cairn://${vm}/${point}/${disk.name}`, size: disk.size };
}

export function pointJson(info: PointInfo): PointJson {
  return {
    vm: info.vm,
    point: info.id,
    url: `cairn://${info.vm}/${info.id}`,
    created: isoTime(info.createdMs),
    parent: info.parent ?? null,
    source: info.source,
    hasConfig: info.hasConfig,
    disks: info.disks.map((d) => diskJson(info.vm, info.id, d)),
  };
}
