import { randomBytes } from 'node:crypto';
import { open, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import type { BlockReader } from '../core/block-reader.js';
import type { AllocationExtent } from '../core/extent.js';
import { CairnError, systemErrorCode } from '../core/errors.js';
import { blockDeviceSize } from '../util/native.js';
import { rethrowForDestination } from './destination-error.js';

const PIECE = 4 * 1024 * 1024;
const IN_FLIGHT = 4;
/** Shared zeros for holes written to a stream or a device; never written to. */
let zeros: Buffer | undefined;
const zerosOf = (length: number) => (zeros ??= Buffer.alloc(PIECE)).subarray(0, length);

export interface CopyProgress {
  (bytesDone: number, bytesTotal: number): void;
}

/** One piece of the disk as read: its data (undefined for all holes) or the error that reading it gave. */
interface Piece {
  offset: number;
  length: number;
  data?: Buffer;
  allocation: AllocationExtent[];
  error?: unknown;
}

/** Errors that mean damaged repository data (exit 5), as opposed to a failing destination or a bug. */
const DAMAGE_CODES: ReadonlySet<string> = new Set(['ERR_CHUNK_CORRUPT', 'ERR_CHUNK_MISSING', 'ERR_FORMAT_INVALID']);
const isDamage = (err: unknown): err is CairnError => err instanceof CairnError && DAMAGE_CODES.has(err.code);

/**
 * Reads a disk in pieces, several in flight, and hands them over in order. A piece that fails to read
 * is handed over with its error, so a caller can decide to go on past damage.
 */
async function forEachPiece(reader: BlockReader, visit: (piece: Piece) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const load = async (offset: number, length: number): Promise<Piece> => {
    try {
      const allocation = await reader.allocation(offset, length);
      // Pieces that are all holes are not read at all.
      if (allocation.every((extent) => extent.zero)) return { offset, length, allocation };
      return { offset, length, allocation, data: await reader.read(offset, length) };
    } catch (error) {
      return { offset, length, allocation: [], error };
    }
  };
  const queue: Promise<Piece>[] = [];
  let next = 0;
  const fill = () => {
    while (queue.length < IN_FLIGHT && next < reader.size) {
      queue.push(load(next, Math.min(PIECE, reader.size - next)));
      next += PIECE;
    }
  };
  fill();
  while (queue.length > 0) {
    signal?.throwIfAborted();
    const piece = await queue.shift()!;
    fill();
    await visit(piece);
  }
}

/**
 * Writes one piece and waits until the stream has taken it: its callback, unlike the 'error' event,
 * reports the failure of exactly this write (a reader gone, a full disk behind a redirection), and
 * stdout never counts as destroyed, so its state cannot be asked. The pieces after it are being
 * read meanwhile, so waiting costs no throughput.
 */
function writeToStream(out: Writable, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(buf, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Writes a whole disk to a stream (stdout for `cairn cat`), respecting back-pressure. A stream cannot
 * be taken back: on damage it has received every piece before the damaged one.
 */
export async function copyToStream(reader: BlockReader, out: Writable, progress?: CopyProgress, signal?: AbortSignal): Promise<void> {
  let done = 0;
  await forEachPiece(
    reader,
    async (piece) => {
      if (piece.error !== undefined) throw piece.error;
      await writeToStream(out, piece.data ?? zerosOf(piece.length));
      done += piece.length;
      progress?.(done, reader.size);
    },
    signal,
  );
}

async function writeFully(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < buf.length) {
    const { bytesWritten } = await handle.write(buf, written, buf.length - written, position + written);
    written += bytesWritten;
  }
}

export interface RestoreOptions {
  force?: boolean;
  progress?: CopyProgress;
  signal?: AbortSignal;
}

/**
 * Restores a disk to a file or a block device. Refuses to overwrite an existing destination unless
 * `force`, and anything that is neither (a directory, a pipe, a character device).
 *
 * A file is written under a temporary name in its directory and renamed over the destination only
 * once complete and synced: on damage, a full disk or an interrupt the temporary file is removed and
 * the destination is as it was. A block device cannot be swapped that way: it is written in place,
 * past damaged chunks, and the error names exactly the byte ranges that were not restored.
 */
export async function restoreToPath(reader: BlockReader, dest: string, options: RestoreOptions = {}): Promise<{ blockDevice: boolean }> {
  const existing = await stat(dest).catch((err: unknown) => {
    if (systemErrorCode(err) === 'ENOENT') return undefined;
    return rethrowForDestination(err, dest);
  });
  if (existing?.isDirectory()) throw new CairnError('ERR_INVALID_ARGUMENT', `destination ${dest} is a directory`, { file: dest });
  if (existing && !options.force) {
    throw new CairnError('ERR_EXISTS', `destination ${dest} exists; pass --force to overwrite it`, { file: dest });
  }
  if (existing?.isBlockDevice()) {
    await restoreToDevice(reader, dest, existing.rdev, options);
    return { blockDevice: true };
  }
  if (existing && !existing.isFile()) {
    throw new CairnError(
      'ERR_INVALID_ARGUMENT',
      `destination ${dest} is neither a regular file nor a block device; write a stream with 'cairn cat URL > ${dest}'`,
      { file: dest },
    );
  }
  await restoreToFile(reader, dest, existing, options);
  return { blockDevice: false };
}

/** Sparse: holes are skipped and the file is sized with truncate. */
async function restoreToFile(reader: BlockReader, dest: string, existing: Stats | undefined, options: RestoreOptions): Promise<void> {
  // A symbolic link stays: the file it names is the one replaced.
  const target = existing ? await realpath(dest) : dest;
  const temp = join(dirname(target), `.${basename(target)}.cairn-restore-${randomBytes(6).toString('hex')}`);
  const handle = await open(temp, 'wx', 0o644).catch((err: unknown) => rethrowForDestination(err, dest));
  let closed = false;
  let renamed = false;
  try {
    if (existing) {
      // The restored file takes the place of the old one: keep its mode and, where allowed, its owner.
      await handle.chmod(existing.mode & 0o7777);
      await handle.chown(existing.uid, existing.gid).catch(() => undefined);
    }
    await handle.truncate(reader.size);
    let done = 0;
    await forEachPiece(
      reader,
      async (piece) => {
        if (piece.error !== undefined) throw piece.error;
        for (const extent of piece.allocation) {
          if (extent.zero || !piece.data) continue;
          const start = extent.offset - piece.offset;
          await writeFully(handle, piece.data.subarray(start, start + extent.length), extent.offset);
        }
        done += piece.length;
        options.progress?.(done, reader.size);
      },
      options.signal,
    );
    await handle.sync();
    await handle.close();
    closed = true;
    await rename(temp, target);
    renamed = true;
    await syncDirectory(dirname(target));
  } catch (err) {
    if (isDamage(err)) {
      throw new CairnError(
        err.code,
        `${err.message}; ${dest} ${existing ? 'is left as it was' : 'was not created'}`,
        { ...err.context, file: dest },
        { cause: err },
      );
    }
    return rethrowForDestination(err, dest);
  } finally {
    if (!closed) await handle.close().catch(() => undefined);
    if (!renamed) await unlink(temp).catch(() => undefined);
  }
}

/** A rename is durable once the directory holding it is synced. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  if (!handle) return;
  await handle.sync().catch(() => undefined);
  await handle.close();
}

/** A half-open byte range [offset, offset + length) of the disk. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** Every byte is written (the device holds old data); a damaged chunk's range is skipped and named. */
async function restoreToDevice(reader: BlockReader, dest: string, rdev: number, options: RestoreOptions): Promise<void> {
  const handle = await open(dest, 'r+').catch((err: unknown) => rethrowForDestination(err, dest));
  try {
    const deviceSize = await blockDeviceSize(handle.fd, rdev);
    if (deviceSize < reader.size) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `destination ${dest} holds ${deviceSize} bytes, less than the disk's ${reader.size}`, {
        file: dest,
      });
    }
    const unrestored: ByteRange[] = [];
    let firstDamage: CairnError | undefined;
    let done = 0;
    await forEachPiece(
      reader,
      async (piece) => {
        if (piece.error === undefined) await writeFully(handle, piece.data ?? zerosOf(piece.length), piece.offset);
        else if (isDamage(piece.error)) {
          firstDamage ??= piece.error;
          await restoreAroundDamage(reader, handle, piece, unrestored);
        } else throw piece.error;
        done += piece.length;
        options.progress?.(done, reader.size);
      },
      options.signal,
    );
    await handle.sync();
    if (firstDamage) {
      throw new CairnError(
        firstDamage.code,
        `${firstDamage.message}; ${dest} is restored except ${formatRanges(unrestored)}, which still hold the device's old data`,
        { ...firstDamage.context, file: dest, unrestored },
        { cause: firstDamage },
      );
    }
  } catch (err) {
    return rethrowForDestination(err, dest);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** Re-reads a damaged piece block by block (the chunk size): writes what reads, records what does not. */
async function restoreAroundDamage(reader: BlockReader, handle: FileHandle, piece: Piece, unrestored: ByteRange[]): Promise<void> {
  const step = Math.max(512, Math.min(reader.blockSize, piece.length));
  for (let offset = piece.offset; offset < piece.offset + piece.length; offset += step) {
    const length = Math.min(step, piece.offset + piece.length - offset);
    try {
      await writeFully(handle, await reader.read(offset, length), offset);
    } catch (err) {
      if (!isDamage(err)) throw err;
      const last = unrestored[unrestored.length - 1];
      if (last && last.offset + last.length === offset) last.length += length;
      else unrestored.push({ offset, length });
    }
  }
}

/** `bytes 131072-196607 and 1048576-1114111` (inclusive ends, as dd and HTTP ranges count). */
export function formatRanges(ranges: ByteRange[]): string {
  return `bytes ${ranges.map((r) => `${r.offset}-${r.offset + r.length - 1}`).join(', ')}`;
}
