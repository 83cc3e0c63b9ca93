import { open, type FileHandle } from 'node:fs/promises';
import { CairnError, systemErrorCode } from '../core/errors.js';
import type { Extent } from '../core/extent.js';
import { blockDeviceSize, dataRanges } from '../util/native.js';
import { changeRuns } from './change-runs.js';
import type { DiskSource, ExtentPlan } from './disk-source.js';
import { orderedPrefetch } from './read-ahead.js';

const READ_AHEAD = 4;
/**
 * With a changed-block bitmap the reads are small and scattered (64 KiB blocks): more of them in
 * flight keep the thread pool busy instead of waiting one round trip per block. Bounded to 16 MiB.
 */
const CHANGED_BLOCKS_READ_AHEAD_BYTES = 16 * 1024 * 1024;

type Step = { offset: number; length: number; kind: 'read' | 'zero' | 'unchanged' };

/** A raw disk image in a file or a block device. Holes of sparse files are found with SEEK_DATA/SEEK_HOLE. */
export class FileSource implements DiskSource {
  bytesRead = 0;
  /** Set when the file looks like a container format rather than a raw disk (it is still read raw). */
  imageFormat: string | undefined;

  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    readonly size: number,
    private readonly isBlockDevice: boolean,
  ) {}

  get description(): string {
    return this.isBlockDevice ? `block device ${this.path}` : `file ${this.path}`;
  }

  static async open(path: string): Promise<FileSource> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      const reason = systemErrorCode(err) === 'ENOENT' ? 'no such file' : (err as Error).message;
      throw new CairnError('ERR_SOURCE', `cannot open source ${path}: ${reason}`, { file: path }, { cause: err });
    }
    try {
      const info = await handle.stat();
      if (info.isDirectory()) throw new CairnError('ERR_SOURCE', `source ${path} is a directory, not a disk image`, { file: path });
      const isBlockDevice = info.isBlockDevice();
      const size = isBlockDevice ? await blockDeviceSize(handle.fd, info.rdev) : info.size;
      const source = new FileSource(handle, path, size, isBlockDevice);
      source.imageFormat = await sniffImageFormat(handle);
      return source;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** What to do with each range: read it, record zeros (a hole of a sparse file), or take it from the base. */
  private *steps(plan: ExtentPlan): Generator<Step> {
    for (const run of changeRuns(this.size, plan)) {
      if (!run.changed) {
        yield { offset: run.offset, length: run.length, kind: 'unchanged' };
        continue;
      }
      let position = run.offset;
      const end = run.offset + run.length;
      const ranges = this.isBlockDevice ? [{ offset: run.offset, length: run.length }] : dataRanges(this.handle.fd, run.offset, end);
      for (const range of ranges) {
        if (range.offset > position) yield { offset: position, length: range.offset - position, kind: 'zero' };
        yield* splitAtChunks(range.offset, range.length, plan.chunkSize);
        position = range.offset + range.length;
      }
      if (position < end) yield { offset: position, length: end - position, kind: 'zero' };
    }
  }

  private async readStep(step: Step): Promise<Extent> {
    if (step.kind !== 'read') return { offset: step.offset, length: step.length, kind: step.kind };
    const data = Buffer.allocUnsafe(step.length);
    let filled = 0;
    while (filled < step.length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.handle.read(data, filled, step.length - filled, step.offset + filled));
      } catch (err) {
        throw new CairnError(
          'ERR_SOURCE',
          `cannot read ${this.description} at offset ${step.offset + filled}: ${(err as Error).message}`,
          {
            file: this.path,
            offset: step.offset + filled,
          },
          { cause: err },
        );
      }
      if (bytesRead === 0) {
        throw new CairnError(
          'ERR_SOURCE',
          `${this.description} is truncated: it ended at offset ${step.offset + filled}, expected ${this.size} bytes`,
          {
            file: this.path,
            offset: step.offset + filled,
          },
        );
      }
      filled += bytesRead;
      this.bytesRead += bytesRead;
    }
    return { offset: step.offset, length: step.length, kind: 'data', data };
  }

  async *extents(plan: ExtentPlan): AsyncIterable<Extent> {
    const steps = this.steps(plan);
    const producers = (function* (source: FileSource) {
      for (const step of steps) yield () => source.readStep(step);
    })(this);
    const depth = plan.changedBlocks ? Math.max(READ_AHEAD, Math.floor(CHANGED_BLOCKS_READ_AHEAD_BYTES / plan.chunkSize)) : READ_AHEAD;
    yield* orderedPrefetch(producers, depth);
    // A file cut short under us looks like a hole to SEEK_DATA: check the size once more at the end.
    if (!this.isBlockDevice) {
      const { size } = await this.handle.stat();
      if (size < this.size) {
        throw new CairnError(
          'ERR_SOURCE',
          `${this.description} is truncated: it shrank to ${size} bytes during the backup, expected ${this.size}`,
          {
            file: this.path,
          },
        );
      }
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Magic numbers of image formats that are not raw disks; a raw backup of them is rarely what was meant. */
const IMAGE_MAGICS: { name: string; magic: Buffer }[] = [
  { name: 'qcow2', magic: Buffer.from([0x51, 0x46, 0x49, 0xfb]) },
  { name: 'VHD', magic: Buffer.from('conectix', 'latin1') },
  { name: 'VHDX', magic: Buffer.from('vhdxfile', 'latin1') },
  { name: 'VMDK', magic: Buffer.from('KDMV', 'latin1') },
];

async function sniffImageFormat(handle: FileHandle): Promise<string | undefined> {
  const head = Buffer.alloc(8);
  const { bytesRead } = await handle.read(head, 0, head.length, 0);
  return IMAGE_MAGICS.find(({ magic }) => bytesRead >= magic.length && head.subarray(0, magic.length).equals(magic))?.name;
}

/** Read steps no longer than a chunk and never crossing a chunk boundary. */
function* splitAtChunks(offset: number, length: number, chunkSize: number): Generator<Step> {
  let position = offset;
  const end = offset + length;
  while (position < end) {
    const next = Math.min(end, (Math.floor(position / chunkSize) + 1) * chunkSize);
    yield { offset: position, length: next - position, kind: 'read' };
    position = next;
  }
}
