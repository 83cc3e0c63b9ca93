import type { BlockReader } from '../../../core/block-reader.js';
import { formatInvalid } from './errors.js';
import type { RunList } from './runlist.js';

/** Volume reads in flight at once for one call: enough to keep a chunk store busy, bounded. */
const READS_IN_FLIGHT = 4;

/**
 * Cluster reads of one NTFS volume. Every cluster number came from the image, so each read is
 * checked against the filesystem's cluster count (which the boot sector parser checked against the
 * volume): a run beyond it is a damaged structure, never a read past the volume.
 */
export class VolumeIO {
  constructor(
    readonly volume: BlockReader,
    readonly name: string,
    readonly clusterSize: number,
    readonly clusterCount: number,
  ) {}

  async read(offset: number, length: number, where: string): Promise<Buffer> {
    this.check(offset, length, where);
    return this.volume.read(offset, length);
  }

  /** Reads `length` bytes at volume byte `offset` into `target` (a view the caller owns). */
  async readInto(offset: number, length: number, target: Buffer, where: string): Promise<void> {
    this.check(offset, length, where);
    if (this.volume.readInto) {
      await this.volume.readInto(offset, length, target.subarray(0, length));
      return;
    }
    const bytes = await this.volume.read(offset, length);
    bytes.copy(target, 0, 0, length);
  }

  /**
   * Fills `target` with bytes [offset, offset + target.length) of the VCN space `runs` maps:
   * sparse runs as zeros, contiguous pieces (on the volume) as one read each. A VCN that no run
   * maps is a damaged structure.
   */
  async readRuns(runs: RunList, offset: number, target: Buffer, where: string): Promise<void> {
    const pieces = this.plan(runs, offset, target.length, where);
    const reads: (() => Promise<void>)[] = [];
    for (const p of pieces) {
      const view = target.subarray(p.at, p.at + p.length);
      if (p.volumeOffset < 0) view.fill(0);
      else reads.push(() => this.readInto(p.volumeOffset, p.length, view, where));
    }
    for (let i = 0; i < reads.length; i += READS_IN_FLIGHT) {
      await Promise.all(reads.slice(i, i + READS_IN_FLIGHT).map((start) => start()));
    }
  }

  /**
   * The pieces of [offset, offset+length) of a VCN space: `at` in the range, `volumeOffset` (-1 for
   * a hole) and length, with neighbours that continue each other on the volume merged.
   */
  plan(runs: RunList, offset: number, length: number, where: string): { at: number; volumeOffset: number; length: number }[] {
    const cs = this.clusterSize;
    const out: { at: number; volumeOffset: number; length: number }[] = [];
    const end = offset + length;
    let pos = offset;
    let i = length > 0 ? runs.find(Math.floor(offset / cs)) : -1;
    while (pos < end) {
      if (i < 0 || i >= runs.count || runs.vcn(i) * cs > pos) {
        throw formatInvalid(this.name, where, `byte ${pos} lies in no run (VCN ${Math.floor(pos / cs)} is not mapped)`);
      }
      const runStart = runs.vcn(i) * cs;
      const runEnd = runStart + runs.length(i) * cs;
      const to = Math.min(runEnd, end);
      const lcn = runs.lcn(i);
      const volumeOffset = lcn < 0 ? -1 : lcn * cs + (pos - runStart);
      const last = out[out.length - 1];
      if (
        last &&
        ((volumeOffset < 0 && last.volumeOffset < 0) ||
          (volumeOffset >= 0 && last.volumeOffset >= 0 && last.volumeOffset + last.length === volumeOffset))
      ) {
        last.length += to - pos;
      } else {
        out.push({ at: pos - offset, volumeOffset, length: to - pos });
      }
      pos = to;
      i++;
    }
    return out;
  }

  private check(offset: number, length: number, where: string): void {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.clusterCount * this.clusterSize
    ) {
      throw formatInvalid(this.name, where, `bytes ${offset}+${length} lie outside the filesystem (${this.clusterCount} clusters)`, {
        offset,
        length,
      });
    }
  }
}
