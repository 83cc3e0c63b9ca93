import { createRequire } from 'node:module';

/**
 * fuse-native lets go of the event loop (the libuv handle its libfuse thread signals) only after its
 * own `fusermount -uz` succeeds. When the mount is gone already (unmounted from outside) or had to be
 * detached another way, that step never runs and the process would never exit. This runs the same
 * native step directly. It reaches into fuse-native 2.2's internals (its loaded addon, the
 * instance's `_thread`), so it only acts when they look as expected; `test/fuse` checks that a mount
 * unmounted from outside ends the process.
 */
export function releaseFuseNative(fuse: object, dir: string): boolean {
  const thread = (fuse as { _thread?: unknown })._thread;
  const cache = createRequire(import.meta.url).cache;
  const addon = Object.keys(cache).find((path) => /[\\/]fuse-native[\\/].*\.node$/.test(path));
  const unmount = addon ? (cache[addon]?.exports as { fuse_native_unmount?: unknown } | undefined)?.fuse_native_unmount : undefined;
  if (thread === undefined || typeof unmount !== 'function') return false;
  (unmount as (dir: string, thread: unknown) => void)(dir, thread);
  return true;
}
