import { constants, existsSync } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError, systemErrorCode } from '../core/errors.js';

/**
 * Reading files of a repository that someone else may have written. Whoever can write the
 * repository must not make Cairn (often root) read a file outside it, block on a FIFO or a device,
 * or allocate what a file claims: every path below the repository root is walked one component at
 * a time without following symbolic links, only regular files are read, and their size (fstat, on
 * the open descriptor) is checked against a bound before a byte is allocated.
 */

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
/** O_NONBLOCK: opening a FIFO must not wait for a writer (fstat then refuses it). */
const FILE_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;

/**
 * `/proc/self/fd/N/name` resolves `name` inside the directory open as N, the way openat(2) does
 * (Node has no openat): the walk holds each directory open, so swapping a component for a symlink
 * between two steps changes nothing. Without /proc the walk lstat-checks each directory first,
 * which leaves a race only a writer of the repository could try to win.
 */
const PROC_FD = existsSync('/proc/self/fd');

function assertComponent(part: string): void {
  if (part === '' || part === '.' || part === '..' || part.includes('/') || part.includes('\0')) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `'${part}' is not a file name inside the repository`);
  }
}

/** Opens `root/parts…` read-only without following a symlink below `root` (the root itself is trusted). */
export async function openBeneath(root: string, parts: readonly string[], options: { viaProc?: boolean } = {}): Promise<FileHandle> {
  parts.forEach(assertComponent);
  if (parts.length === 0) throw new CairnError('ERR_INVALID_ARGUMENT', 'no file named');
  if (!(options.viaProc ?? PROC_FD)) {
    for (let n = 1; n < parts.length; n++) {
      const dir = join(root, ...parts.slice(0, n));
      if (!(await lstat(dir)).isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR' });
    }
    return open(join(root, ...parts), FILE_FLAGS);
  }
  let dir = await open(root, O_RDONLY | O_DIRECTORY);
  try {
    for (const part of parts.slice(0, -1)) {
      const next = await open(`/proc/self/fd/${dir.fd}/${part}`, DIR_FLAGS);
      await dir.close();
      dir = next;
    }
    return await open(`/proc/self/fd/${dir.fd}/${parts[parts.length - 1]!}`, FILE_FLAGS);
  } finally {
    await dir.close();
  }
}

export interface ReadLimit {
  /** Name for messages and error context (a path relative to the repository). */
  name: string;
  maxBytes: number;
  minBytes?: number;
}

function damaged(name: string, reason: string, cause?: unknown): CairnError {
  return new CairnError('ERR_FORMAT_INVALID', `${name} is damaged: ${reason}`, { file: name }, cause === undefined ? undefined : { cause });
}

/**
 * Reads a whole repository file whose size must lie in [minBytes, maxBytes]. ENOENT is passed on
 * as it is (callers know what a missing file means); a symlink, a non-directory on the way, a
 * file that is not regular, or one of the wrong size is ERR_FORMAT_INVALID naming the file.
 */
export async function readBeneath(root: string, parts: readonly string[], limit: ReadLimit): Promise<Buffer> {
  let handle: FileHandle;
  try {
    handle = await openBeneath(root, parts);
  } catch (err) {
    const code = systemErrorCode(err);
    if (code === 'ELOOP') throw damaged(limit.name, 'it (or a directory on its way) is a symbolic link', err);
    if (code === 'ENOTDIR') throw damaged(limit.name, 'a directory on its way is not a directory', err);
    throw err;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw damaged(limit.name, 'it is not a regular file');
    if (info.size > limit.maxBytes || info.size < (limit.minBytes ?? 0)) {
      throw damaged(limit.name, `it holds ${info.size} bytes, outside the ${limit.minBytes ?? 0}..${limit.maxBytes} it may hold`);
    }
    const data = Buffer.allocUnsafe(info.size);
    let filled = 0;
    while (filled < data.length) {
      const { bytesRead } = await handle.read(data, filled, data.length - filled, filled);
      if (bytesRead === 0) throw damaged(limit.name, 'it shrank while being read');
      filled += bytesRead;
    }
    // Published files are immutable: one that grows while read is not what fstat described.
    if ((await handle.read(Buffer.alloc(1), 0, 1, filled)).bytesRead !== 0) throw damaged(limit.name, 'it grew while being read');
    return data;
  } finally {
    await handle.close();
  }
}
