import type { FuseOperations, FuseStat, FuseStatfs } from 'fuse-native';
import type { BlockReader } from '../core/block-reader.js';
import type { Catalog } from '../core/catalog.js';
import { isCairnError } from '../core/errors.js';
import type { Logger } from '../log/index.js';
import type { NamespaceTree, TreeNode } from './namespace-tree.js';
import { ERRNO, fuseErrnoOf } from './errno.js';
import { SequentialReadAhead } from './read-ahead.js';
import { BlockWindow } from './block-window.js';

export interface Ownership {
  uid: number;
  gid: number;
}

/**
 * Modes: a restore point is as sensitive as the disk it copies, so files are readable by owner and
 * group only (the mounting user unless told otherwise); the kernel enforces them (default_permissions).
 */
export const MODES = { dir: 0o040550, file: 0o100440, symlink: 0o120777 } as const;

const O_ACCMODE = 3;
const O_RDONLY = 0;
const NAME_MAX = 255;

interface OpenFile {
  path: string;
  reader: BlockReader;
  readAhead: SequentialReadAhead;
  window: BlockWindow;
  /** The reader's copy-into-a-buffer read, when it has one (see readIntoOf). */
  readInto: ReadInto | undefined;
}

type ReadInto = (offset: number, length: number, target: Buffer) => Promise<void>;

/**
 * A reader that copies out of its chunk cache anyway (DiskReader.readInto) can copy straight into
 * libfuse's reply buffer: one copy per request, where holding its block would first copy the whole
 * block out of the cache into a fresh buffer and then each request out of that.
 */
function readIntoOf(reader: BlockReader): ReadInto | undefined {
  return reader.readInto ? (offset, length, target) => reader.readInto!(offset, length, target) : undefined;
}

/** Counts requests being served, so an unmount can let them finish first. */
export class InFlight {
  private count = 0;
  private waiters: Array<() => void> = [];

  enter(): void {
    this.count++;
  }

  leave(): void {
    this.count--;
    if (this.count === 0) for (const wake of this.waiters.splice(0)) wake();
  }

  get size(): number {
    return this.count;
  }

  /** Resolves once nothing is in flight, or after `timeoutMs` whatever remains. */
  drained(timeoutMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/**
 * Guest files keep the guest's permission bits and times. Ownership stays the mounting user's (the
 * guest's uid/gid mean nothing on this host; `cairn ls -l` shows them), and the owner may always
 * read: whoever may read the repository may read the raw image anyway.
 */
function modeOf(node: TreeNode): number {
  const type = MODES[node.kind] & ~0o7777;
  if (!node.guest) return MODES[node.kind];
  if (node.kind === 'symlink') return MODES.symlink;
  return type | (node.guest.permissions & 0o7777) | (node.kind === 'dir' ? 0o500 : 0o400);
}

function statOf(node: TreeNode, owner: Ownership, blockSize: number): FuseStat {
  // Milliseconds, which fuse-native takes as they are (no Date per field on every getattr).
  const mtime = node.mtimeMs;
  const base = {
    uid: owner.uid,
    gid: owner.gid,
    mtime,
    atime: node.guest ? node.guest.atimeMs : mtime,
    ctime: node.guest ? node.guest.ctimeMs : mtime,
    mode: modeOf(node),
  };
  switch (node.kind) {
    case 'dir':
      return { ...base, size: 4096, nlink: node.guest?.nlink ?? 2 };
    case 'symlink':
      return { ...base, size: Buffer.byteLength(node.target), nlink: node.guest?.nlink ?? 1 };
    case 'file':
      // st_blocks in 512-byte units; st_blksize tells cp and dd the chunk size is the good I/O size.
      return { ...base, size: node.size, nlink: node.guest?.nlink ?? 1, blksize: blockSize, blocks: Math.ceil(node.size / 512) };
  }
}

/** Picks a fragment size that keeps block counts within the 32 bits fuse-native passes. */
function statfsOf(space: { totalBytes: number; freeBytes: number }): FuseStatfs {
  let frsize = 4096;
  while (space.totalBytes / frsize >= 2 ** 32) frsize *= 2;
  const blocks = Math.floor(space.totalBytes / frsize);
  const free = Math.floor(space.freeBytes / frsize);
  return {
    bsize: frsize,
    frsize,
    blocks,
    bfree: free,
    bavail: free,
    files: 0,
    ffree: 0,
    favail: 0,
    fsid: 0x6361726e,
    flag: 1,
    namemax: NAME_MAX,
  };
}

/**
 * The fuse-native handlers over a NamespaceTree. There is no lseek handler: fuse-native binds libfuse 2.9,
 * whose API has no lseek operation (it came with libfuse 3.8), so SEEK_DATA/SEEK_HOLE on these files
 * fall back to the kernel's default (the whole file is data); holes still read as zeros. Every callback answers exactly once and never throws:
 * failures become errnos through fuseErrnoOf; damaged data is logged with the chunk it came from.
 */
export function makeFuseOperations(
  tree: NamespaceTree,
  catalog: Catalog,
  options: { owner: Ownership; blockSize: number; log: Logger; inFlight: InFlight; closing: { value: boolean } },
): FuseOperations {
  const { owner, log, inFlight } = options;
  const files = new Map<number, OpenFile>();
  let nextFd = 1;

  function answer<T>(work: () => Promise<T>, reply: (value: T) => void, fail: (errno: number) => void, what: string): void {
    if (options.closing.value) {
      fail(ERRNO.ENOTCONN);
      return;
    }
    // Every request costs a handful of promise reactions at most: a tree walk is tens of thousands of them.
    let pending: Promise<T>;
    try {
      pending = work();
    } catch (err) {
      pending = Promise.reject(err);
    }
    inFlight.enter();
    pending
      .then(
        (value) => {
          inFlight.leave();
          reply(value);
        },
        (err: unknown) => {
          inFlight.leave();
          const errno = fuseErrnoOf(err);
          if (!isCairnError(err, 'ERR_NOT_FOUND')) {
            const context = isCairnError(err) ? { code: err.code, ...err.context } : { err };
            log.warn(context, `${what}: ${(err as Error).message ?? String(err)}`);
          }
          fail(errno);
        },
      )
      .catch((err: unknown) => log.error({ err }, `FUSE reply failed for ${what}`));
  }

  return {
    getattr(path, cb) {
      answer(
        () => tree.lookup(path),
        (node) => cb(0, statOf(node, owner, options.blockSize)),
        (e) => cb(e),
        `getattr ${path}`,
      );
    },
    fgetattr(path, _fd, cb) {
      answer(
        () => tree.lookup(path),
        (node) => cb(0, statOf(node, owner, options.blockSize)),
        (e) => cb(e),
        `getattr ${path}`,
      );
    },
    readdir(path, cb) {
      answer(
        () => tree.list(path),
        (names) => cb(0, ['.', '..', ...names]),
        (e) => cb(e),
        `readdir ${path}`,
      );
    },
    readlink(path, cb) {
      answer(
        () => tree.lookup(path),
        (node) => (node.kind === 'symlink' ? cb(0, node.target) : cb(ERRNO.EINVAL)),
        (e) => cb(e),
        `readlink ${path}`,
      );
    },
    open(path, flags, cb) {
      if ((flags & O_ACCMODE) !== O_RDONLY) {
        cb(ERRNO.EROFS);
        return;
      }
      answer(
        async () => {
          const node = await tree.lookup(path);
          if (node.kind !== 'file') return undefined;
          return node.open();
        },
        (reader) => {
          if (!reader) {
            cb(ERRNO.EISDIR);
            return;
          }
          const fd = nextFd++;
          // fuse-native passes fds as uint32 and treats 0 as "none": wrap well before that.
          if (nextFd > 0x7fffffff) nextFd = 1;
          files.set(fd, {
            path,
            reader,
            readAhead: new SequentialReadAhead(reader),
            window: new BlockWindow(reader),
            readInto: readIntoOf(reader),
          });
          cb(0, fd);
        },
        (e) => cb(e),
        `open ${path}`,
      );
    },
    release(_path, fd, cb) {
      files.delete(fd);
      cb(0);
    },
    read(path, fd, buf, len, pos, cb) {
      const file = files.get(fd);
      if (!file) {
        cb(ERRNO.EBADF);
        return;
      }
      if (options.closing.value) {
        cb(ERRNO.ENOTCONN);
        return;
      }
      const length = Math.max(0, Math.min(len, file.reader.size - pos));
      if (length === 0) {
        cb(0);
        return;
      }
      file.readAhead.noteRead(pos, length);
      const readInto = file.readInto;
      if (readInto) {
        answer(
          () => readInto(pos, length, buf),
          () => cb(length),
          (e) => cb(e),
          `read ${path} at ${pos} (${length} bytes)`,
        );
        return;
      }
      const held = file.window.peek(pos, length);
      if (held) {
        held.copy(buf, 0, 0, length);
        cb(length);
        return;
      }
      answer(
        () => file.window.read(pos, length),
        (data) => {
          data.copy(buf, 0, 0, length);
          cb(length);
        },
        (e) => cb(e),
        `read ${path} at ${pos} (${length} bytes)`,
      );
    },
    statfs(_path, cb) {
      answer(
        () => catalog.space(),
        (space) => cb(0, statfsOf(space)),
        (e) => cb(e),
        'statfs',
      );
    },
  };
}
