import { open, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { BlockReader } from '../core/block-reader.js';
import type { AllocationExtent } from '../core/extent.js';
import { CairnError, systemErrorCode } from '../core/errors.js';
import { blockDeviceSize } from '../util/native.js';

const PIECE = 4 * 1024 * 1024;
const IN_FLIGHT = 4;

export interface CopyProgress {
  (bytesDone: number, bytesTotal: number): void;
}

/** Reads a disk in pieces, several in flight, and hands them over in order. */
async function forEachPiece(
  reader: BlockReader,
  visit: (offset: number, data: Buffer | undefined, allocation: AllocationExtent[]) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const pieces: { offset: number; length: number }[] = [];
  for (let offset = 0; offset < reader.size; offset += PIECE) pieces.push({ offset, length: Math.min(PIECE, reader.size - offset) });
  const load = async ({ offset, length }: { offset: number; length: number }) => {
    const allocation = await reader.allocation(offset, length);
    // Pieces that are all holes are not read at all.
    if (allocation.every((extent) => extent.zero)) return { offset, data: undefined, allocation };
    return { offset, data: await reader.read(offset, length), allocation };
  };
  const queue: Promise<{ offset: number; data: Buffer | undefined; allocation: AllocationExtent[] }>[] = [];
  let next = 0;
  const fill = () => {
    while (queue.length < IN_FLIGHT && next < pieces.length) {
      const p = load(pieces[next++]!);
      p.catch(() => undefined);
      queue.push(p);
    }
  };
  fill();
  while (queue.length > 0) {
    signal?.throwIfAborted();
    const { offset, data, allocation } = await queue.shift()!;
    fill();
    await visit(offset, data, allocation);
  }
}

/** Writes a whole disk to a stream (stdout for `cairn cat`), respecting back-pressure. */
export async function copyToStream(reader: BlockReader, out: Writable, progress?: CopyProgress, signal?: AbortSignal): Promise<void> {
  let done = 0;
  await forEachPiece(
    reader,
    async (offset, data) => {
      const length = Math.min(PIECE, reader.size - offset);
      const buf = data ?? Buffer.alloc(length);
      if (!out.write(buf))
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error) => reject(err);
          out.once('error', onError);
          out.once('drain', () => {
            out.off('error', onError);
            resolve();
          });
        });
      done += length;
      progress?.(done, reader.size);
    },
    signal,
  );
}

/**
 * Restores a disk to a file (sparse: holes are skipped and the file is sized with truncate) or to a
 * block device (every byte written, since the device holds old data). Refuses to overwrite an
 * existing destination unless `force`.
 */
export async function restoreToPath(
  reader: BlockReader,
  dest: string,
  options: { force?: boolean; progress?: CopyProgress; signal?: AbortSignal } = {},
): Promise<{ blockDevice: boolean }> {
  const existing = await stat(dest).catch((err: unknown) => {
    if (systemErrorCode(err) === 'ENOENT') return undefined;
    throw err;
  });
  if (existing?.isDirectory()) throw new CairnError('ERR_INVALID_ARGUMENT', `destination ${dest} is a directory`, { file: dest });
  if (existing && !options.force) {
    throw new CairnError('ERR_EXISTS', `destination ${dest} exists; pass --force to overwrite it`, { file: dest });
  }
  const blockDevice = existing?.isBlockDevice() ?? false;
  const handle = await open(dest, blockDevice ? 'r+' : 'w', 0o644);
  try {
    if (blockDevice && existing) {
      const deviceSize = await blockDeviceSize(handle.fd, existing.rdev);
      if (deviceSize < reader.size) {
        throw new CairnError('ERR_INVALID_ARGUMENT', `destination ${dest} holds ${deviceSize} bytes, less than the disk's ${reader.size}`, {
          file: dest,
        });
      }
    }
    let done = 0;
    if (!blockDevice) await handle.truncate(reader.size);
    await forEachPiece(
      reader,
      async (offset, data, allocation) => {
        const length = Math.min(PIECE, reader.size - offset);
        // A device gets every byte (it holds old data); a file only its data extents (it stays sparse).
        const extents = blockDevice ? [{ offset, length, zero: false }] : allocation.filter((extent) => !extent.zero);
        for (const extent of extents) {
          const start = extent.offset - offset;
          const buf = data ? data.subarray(start, start + extent.length) : Buffer.alloc(extent.length);
          let written = 0;
          while (written < buf.length) {
            const { bytesWritten } = await handle.write(buf, written, buf.length - written, extent.offset + written);
            written += bytesWritten;
          }
        }
        done += length;
        options.progress?.(done, reader.size);
      },
      options.signal,
    );
    await handle.sync();
  } catch (err) {
    if (systemErrorCode(err) === 'ENOSPC')
      throw new CairnError('ERR_NO_SPACE', `no space left writing ${dest}`, { file: dest }, { cause: err });
    throw err;
  } finally {
    await handle.close();
  }
  return { blockDevice };
}
