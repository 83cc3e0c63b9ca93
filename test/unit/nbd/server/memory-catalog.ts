import type {
  AllocationExtent,
  BlockReader,
  Catalog,
  ChangeExtent,
  ChangeMap,
  PointInfo,
  RepositorySpace,
} from '../../../../src/core/index.js';
import { CairnError } from '../../../../src/core/index.js';

/** A disk held in memory; all-zero blocks report as holes, and reads can be delayed per offset. */
export class MemoryDisk implements BlockReader {
  readonly size: number;
  /** Test hook: how long to stall a read starting at a given offset. */
  delayFor: (offset: number) => number = () => 0;
  failAt: number | undefined;
  reads = 0;

  constructor(
    readonly data: Buffer,
    readonly blockSize = 64 * 1024,
  ) {
    this.size = data.length;
  }

  private isZeroBlock(index: number): boolean {
    const start = index * this.blockSize;
    const block = this.data.subarray(start, Math.min(this.size, start + this.blockSize));
    return block.every((b) => b === 0);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.reads++;
    if (offset + length > this.size) throw new CairnError('ERR_OUT_OF_RANGE', 'read past end', { offset, length });
    const delay = this.delayFor(offset);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    if (this.failAt !== undefined && this.failAt >= offset && this.failAt < offset + length) {
      throw new CairnError('ERR_CHUNK_CORRUPT', 'chunk digest mismatch', { offset: this.failAt });
    }
    return Buffer.from(this.data.subarray(offset, offset + length));
  }

  async allocation(offset: number, length: number): Promise<AllocationExtent[]> {
    const out: AllocationExtent[] = [];
    const end = Math.min(this.size, offset + length);
    for (let pos = offset; pos < end;) {
      const index = Math.floor(pos / this.blockSize);
      const next = Math.min(end, (index + 1) * this.blockSize);
      const zero = this.isZeroBlock(index);
      const last = out[out.length - 1];
      if (last && last.zero === zero) last.length = next - last.offset;
      else out.push({ offset: pos, length: next - pos, zero });
      pos = next;
    }
    return out;
  }
}

interface StoredPoint {
  info: PointInfo;
  disks: Map<string, MemoryDisk>;
}

/** Just enough of a Catalog to serve NBD exports from memory. */
export class MemoryCatalog implements Catalog {
  private readonly vms = new Map<string, StoredPoint[]>();

  addPoint(vm: string, id: string, disks: Record<string, MemoryDisk>): PointInfo {
    const points = this.vms.get(vm) ?? [];
    const info: PointInfo = {
      vm,
      id,
      createdMs: Date.parse('2026-11-21T00:00:00Z') + points.length * 1000,
      source: 'memory',
      hasConfig: false,
      disks: Object.entries(disks).map(([name, d]) => ({ name, size: d.size })),
    };
    points.push({ info, disks: new Map(Object.entries(disks)) });
    this.vms.set(vm, points);
    return info;
  }

  private point(vm: string, point: string): StoredPoint {
    const points = this.vms.get(vm);
    if (!points) throw new CairnError('ERR_NOT_FOUND', `no VM ${vm}`);
    const found = point === 'latest' ? points[points.length - 1] : points.find((p) => p.info.id === point);
    if (!found) throw new CairnError('ERR_NOT_FOUND', `no point ${vm}/${point}`);
    return found;
  }

  async listVms(): Promise<string[]> {
    return [...this.vms.keys()];
  }
  async listPoints(vm: string): Promise<PointInfo[]> {
    const points = this.vms.get(vm);
    if (!points) throw new CairnError('ERR_NOT_FOUND', `no VM ${vm}`);
    return points.map((p) => p.info);
  }
  async getPoint(vm: string, point: string): Promise<PointInfo> {
    return this.point(vm, point).info;
  }
  async openDisk(vm: string, point: string, disk: string): Promise<BlockReader> {
    const d = this.point(vm, point).disks.get(disk);
    if (!d) throw new CairnError('ERR_NOT_FOUND', `no disk ${disk}`);
    return d;
  }
  async readConfig(): Promise<Buffer | undefined> {
    return undefined;
  }
  async changesSince(vm: string, point: string, disk: string, sincePoint: string): Promise<ChangeMap> {
    const current = (await this.openDisk(vm, point, disk)) as MemoryDisk;
    const older = (await this.openDisk(vm, sincePoint, disk)) as MemoryDisk;
    const bs = current.blockSize;
    return {
      blockSize: bs,
      async changes(offset: number, length: number): Promise<ChangeExtent[]> {
        const out: ChangeExtent[] = [];
        const end = Math.min(current.size, offset + length);
        for (let pos = offset; pos < end;) {
          const next = Math.min(end, (Math.floor(pos / bs) + 1) * bs);
          const start = Math.floor(pos / bs) * bs;
          const a = current.data.subarray(start, Math.min(current.size, start + bs));
          const b = older.data.subarray(start, Math.min(older.size, start + bs));
          const changed = !a.equals(b);
          const last = out[out.length - 1];
          if (last && last.changed === changed) last.length = next - last.offset;
          else out.push({ offset: pos, length: next - pos, changed });
          pos = next;
        }
        return out;
      },
    };
  }
  async space(): Promise<RepositorySpace> {
    return { totalBytes: 0, freeBytes: 0, usedBytes: 0 };
  }
}
