import type { BlockReader, ChangeMap } from './block-reader.js';

export interface DiskInfo {
  name: string;
  /** Virtual size in bytes. */
  size: number;
}

export interface PointInfo {
  vm: string;
  /** Sortable, time-based id (e.g. 20261121T051233Z). */
  id: string;
  /** Creation time, milliseconds since the epoch. */
  createdMs: number;
  parent?: string;
  /** Free text naming where the data came from. */
  source: string;
  hasConfig: boolean;
  disks: DiskInfo[];
}

export interface RepositorySpace {
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
}

/**
 * The read side of the repository as restore consumers (NBD exports, FUSE tree, `cairn cat`) see it.
 * Implemented in src/restore over the store; adapters depend on this interface only.
 * `point` arguments accept a point id or `latest`.
 */
export interface Catalog {
  listVms(): Promise<string[]>;
  /** Points of one VM, oldest first. ERR_NOT_FOUND for an unknown VM. */
  listPoints(vm: string): Promise<PointInfo[]>;
  getPoint(vm: string, point: string): Promise<PointInfo>;
  openDisk(vm: string, point: string, disk: string): Promise<BlockReader>;
  readConfig(vm: string, point: string): Promise<Buffer | undefined>;
  /** Blocks of `disk` in `point` that differ from the same disk in `sincePoint` (same VM). */
  changesSince(vm: string, point: string, disk: string, sincePoint: string): Promise<ChangeMap>;
  space(): Promise<RepositorySpace>;
}
