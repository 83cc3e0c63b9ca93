import Fuse from 'fuse-native';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Catalog } from '../core/catalog.js';
import { CairnError } from '../core/errors.js';
import { childLogger, type Logger } from '../log/index.js';
import { Namespace } from '../restore/namespace/index.js';
import { NamespaceTree } from './namespace-tree.js';
import { InFlight, makeFuseOperations } from './fuse-operations.js';
import { releaseFuseNative } from './fuse-native-release.js';
import { setKernelReadAhead } from './kernel-read-ahead.js';
import { abortFuseConnection, detachMount, fuseConnectionId, isMountPoint, isStaleFuseMount } from './stale-mount.js';

export interface MountOptions {
  /** Let other users than the mounting one (subject to the files' modes) see the tree. */
  allowOther?: boolean;
  /** Owner of every entry; defaults to the mounting process's uid/gid. */
  uid?: number;
  gid?: number;
  /** Preferred I/O size reported as st_blksize (the repository's chunk size). */
  blockSize?: number;
  /** How long an unmount waits for requests being served before it detaches anyway. */
  drainTimeoutMs?: number;
  log?: Logger;
  /** libfuse's own request tracing on stderr. */
  debug?: boolean;
}

export interface FuseMount {
  readonly dir: string;
  /** Settles when the mount goes away without `unmount()`: `fusermount -u` or `umount` from outside. */
  readonly ended: Promise<void>;
  /** Lets requests in flight finish (bounded), then detaches the mount. Safe to call twice. */
  unmount(): Promise<void>;
}

/** How often the mount table is checked for an unmount from outside. */
const MOUNT_WATCH_MS = 1000;

/**
 * The largest read the kernel will send. libfuse 2 (what fuse-native binds) does not negotiate
 * FUSE_MAX_PAGES, so the kernel caps requests at 32 pages (128 KiB) whatever is asked; asking for
 * more is harmless and takes effect with a newer libfuse.
 */
export const MAX_READ = 1024 * 1024;
const DEFAULT_DRAIN_TIMEOUT_MS = 5000;
/** Per-request limit inside fuse-native; a slow backend must answer within it or the reader gets ETIMEDOUT. */
const REQUEST_TIMEOUT_MS = 60_000;

function mountError(dir: string, err: unknown): CairnError {
  const reason = err instanceof Error ? err.message : String(err);
  return new CairnError(
    'ERR_IO',
    `cannot mount FUSE at ${dir}: ${reason} (is /dev/fuse present and Debian's libfuse2 installed?)`,
    { dir },
    { cause: err },
  );
}

/**
 * Mounts the restore points of `catalog` read-only at `dir` and resolves once the kernel serves it.
 * A stale mount left at `dir` by a crashed process is detached first (with a warning).
 */
export async function mountCatalog(catalog: Catalog, dirPath: string, options: MountOptions = {}): Promise<FuseMount> {
  const dir = resolve(dirPath);
  const log = options.log ?? childLogger('fuse', { dir });
  if (await isStaleFuseMount(dir)) {
    log.warn({ dir }, `${dir} holds a stale FUSE mount (its process is gone); detaching it and mounting again`);
    await detachMount(dir);
  } else if (await isMountPoint(dir)) {
    throw new CairnError('ERR_LOCKED', `${dir} is already a mount point; unmount it first (fusermount -u ${dir})`, { dir });
  }
  await mkdir(dir, { recursive: true });

  const namespace = new Namespace(catalog, { warn: (message, context) => log.warn(context, message) });
  const tree = new NamespaceTree(namespace, log);
  const inFlight = new InFlight();
  const closing = { value: false };
  const operations = makeFuseOperations(tree, catalog, {
    owner: { uid: options.uid ?? process.getuid?.() ?? 0, gid: options.gid ?? process.getgid?.() ?? 0 },
    blockSize: options.blockSize ?? 1024 * 1024,
    log,
    inFlight,
    closing,
  });
  const fuse = new Fuse(dir, operations, {
    allowOther: options.allowOther ?? false,
    defaultPermissions: true,
    // Points never change once published, so the page cache may keep their pages across opens.
    kernelCache: true,
    maxRead: MAX_READ,
    // fuse-native forwards only the options it knows; `ro` and `max_readahead` ride on fsname's value.
    fsname: `cairn,ro,max_readahead=${MAX_READ}`,
    subtype: 'cairn',
    timeout: REQUEST_TIMEOUT_MS,
    debug: options.debug ?? false,
  });
  await new Promise<void>((resolveMount, reject) => {
    try {
      fuse.mount((err) => (err ? reject(mountError(dir, err)) : resolveMount()));
    } catch (err) {
      reject(mountError(dir, err));
    }
  });
  log.info({ dir }, `restore points mounted at ${dir}`);
  const connectionId = await fuseConnectionId(dir);
  if (connectionId !== undefined && !(await setKernelReadAhead(connectionId))) {
    log.debug({ connectionId }, 'cannot raise the kernel read-ahead of the mount (not root?); sequential reads are slower');
  }

  /** Whether `dir` is still this process's mount (not unmounted, not replaced by another). */
  const stillMounted = async () => (connectionId !== undefined ? (await fuseConnectionId(dir)) === connectionId : isMountPoint(dir));
  let unmounting: Promise<void> | undefined;
  let watch: NodeJS.Timeout | undefined;
  const ended = new Promise<void>((gone) => {
    watch = setInterval(() => {
      void stillMounted().then((mounted) => {
        if (mounted || unmounting) return;
        clearInterval(watch);
        log.info({ dir }, `${dir} was unmounted from outside`);
        gone();
      });
    }, MOUNT_WATCH_MS);
    // The mount itself keeps the process alive; the watch must not.
    watch.unref();
  });
  return {
    dir,
    ended,
    unmount() {
      unmounting ??= (async () => {
        clearInterval(watch);
        // From here on new requests fail at once (ENOTCONN, as from a dead mount); those already
        // being served get their answer first.
        closing.value = true;
        if (inFlight.size > 0) log.info({ requests: inFlight.size }, 'letting requests in flight finish before unmounting');
        await inFlight.drained(options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS);
        if (await stillMounted()) {
          await new Promise<void>((done, fail) => fuse.unmount((err) => (err ? fail(err) : done()))).catch(async (err: unknown) => {
            log.warn({ err }, 'unmount failed; detaching lazily');
            await detachMount(dir);
            releaseFuseNative(fuse, dir);
          });
        } else if (!releaseFuseNative(fuse, dir)) {
          log.warn({ dir }, 'the mount is gone but fuse-native still holds the event loop; the process may not exit by itself');
        }
        // A lazy unmount leaves the connection alive while a file is open; libfuse's thread must not
        // outlive this process's event loop (fuse-native would crash at exit), so end it now.
        if (connectionId !== undefined) await abortFuseConnection(connectionId);
        log.info({ dir }, `unmounted ${dir}`);
      })();
      return unmounting;
    },
  };
}
