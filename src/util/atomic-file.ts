import { open, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A temp name beside `path`, unique per writer; `.tmp-` files are ignored by every reader. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.tmp-${basename(path)}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** fsync a directory so that a rename inside it is durable. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` to `path` so that readers see either the old file or the whole new one: temp file,
 * fsync, rename, fsync of the directory. With `mode` the file gets exactly that mode (set with
 * fchmod, so the umask does not narrow or widen it); without, 0644 less the umask.
 */
export async function writeFileAtomic(path: string, data: Buffer | string, options: { sync?: boolean; mode?: number } = {}): Promise<void> {
  const sync = options.sync ?? true;
  const temp = tempPathFor(path);
  const handle = await open(temp, 'wx', options.mode ?? 0o644);
  try {
    if (options.mode !== undefined) await handle.chmod(options.mode);
    await handle.writeFile(data);
    if (sync) await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  if (sync) await fsyncDirectory(dirname(path));
}
