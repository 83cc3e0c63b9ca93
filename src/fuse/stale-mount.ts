import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
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
