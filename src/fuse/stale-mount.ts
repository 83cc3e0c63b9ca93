import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { systemErrorCode } from '../core/errors.js';

const run = promisify(execFile);

/** Decodes the octal escapes (\040 for a space…) that /proc/self/mountinfo uses in paths. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** True when `dir` is a mount point (field 5 of /proc/self/mountinfo). */
export async function isMountPoint(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  return info.split('\n').some((line) => {
    const field = line.split(' ')[4];
    return field !== undefined && unescapeMountPath(field) === dir;
  });
}

/**
 * A FUSE mount whose process died answers ENOTCONN ("Transport endpoint is not connected") to every
 * access. Returns true when `dir` is such a mount.
 */
export async function isStaleFuseMount(dir: string): Promise<boolean> {
  try {
    await stat(dir);
    return false;
  } catch (err) {
    return systemErrorCode(err) === 'ENOTCONN';
  }
}

/** Detaches a mount lazily: fusermount first (works for the mount's owner), then umount -l (root). */
export async function detachMount(dir: string): Promise<void> {
  try {
    await run('fusermount', ['-u', '-z', dir]);
  } catch (first) {
    try {
      await run('umount', ['-l', dir]);
    } catch {
      throw first;
    }
  }
}

const FUSECTL_DIR = '/sys/fs/fuse/connections';

/** The FUSE connection id of the mount at `dir`: the minor number of its device (mountinfo field 3). */
export async function fuseConnectionId(dir: string): Promise<number | undefined> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  for (const line of info.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] !== undefined && unescapeMountPath(fields[4]) === dir) {
      const minor = Number(fields[2]?.split(':')[1]);
      if (Number.isInteger(minor)) return minor;
    }
  }
  return undefined;
}

/**
 * Aborts a FUSE connection through fusectl, so requests still queued (a reader holding a file open
 * after a lazy unmount, a loop device) fail at once and libfuse's loop ends before the process does.
 * Best effort: needs root, and mounts fusectl where the system has not.
 */
export async function abortFuseConnection(id: number): Promise<boolean> {
  const abortFile = `${FUSECTL_DIR}/${id}/abort`;
  const tryAbort = () =>
    writeFile(abortFile, '1').then(
      () => true,
      (err: unknown) => (systemErrorCode(err) === 'ENOENT' ? undefined : false),
    );
  const first = await tryAbort();
  if (first !== undefined) return first;
  // ENOENT: either fusectl is not mounted, or the connection is already gone.
  await run('mount', ['-t', 'fusectl', 'fusectl', FUSECTL_DIR]).catch(() => undefined);
  return (await tryAbort()) ?? false;
}
