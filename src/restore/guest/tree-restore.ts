import { constants } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rename, rm, symlink, utimes } from 'node:fs/promises';
import { CairnError, isCairnError, systemErrorCode } from '../../core/errors.js';
import type { GuestStat } from '../../core/guest-filesystem.js';
import { unescapeGuestName } from '../../url/guest-name.js';
import type { Namespace } from '../namespace/namespace.js';
import type { GuestNode } from '../namespace/nodes.js';
import { walkGuestTree } from './walk.js';

const PIECE = 4 * 1024 * 1024;
/** Hard-linked files remembered to link their other names; beyond this they are copied again. */
const MAX_LINKS_REMEMBERED = 200_000;

export interface TreeRestoreOptions {
  /** Overwrite files that exist (and restore into an existing directory). */
  force?: boolean;
  /** Give restored entries the guest's uid/gid (only root can). */
  keepOwnership?: boolean;
  progress?: (bytesDone: number, bytesTotal: number) => void;
  /** Bytes the whole restore will copy, when known (for progress). */
  totalBytes?: number;
  signal?: AbortSignal;
}

export interface TreeRestoreResult {
  files: number;
  directories: number;
  symlinks: number;
  hardLinks: number;
  bytes: number;
  /** Files not restored because their data is damaged in the repository (each removed, never left partial). */
  damaged: { path: string; message: string }[];
  /** Entries Cairn does not recreate (devices, fifos, sockets), or could not with the destination's rules. */
  skipped: { path: string; reason: string }[];
}

const join = (dir: Buffer, name: Buffer): Buffer => Buffer.concat([dir, Buffer.from('/'), name]);
const seconds = (ns: bigint): number => Number(ns) / 1e9;
let tempCounter = 0;

/**
 * Restores a guest file or directory tree to `dest`: contents (sparse files stay sparse), modes,
 * times (to the microsecond, as Node sets them), symlinks, hard links, ownership when asked. Each file
 * is written under a temporary name beside its final one and renamed when complete, so an interrupted
 * or damaged file never appears half-written. A file whose chunks are damaged is named in the result
 * and the rest goes on.
 */
export async function restoreGuestTree(
  namespace: Namespace,
  start: GuestNode,
  dest: string,
  options: TreeRestoreOptions = {},
): Promise<TreeRestoreResult> {
  const result: TreeRestoreResult = { files: 0, directories: 0, symlinks: 0, hardLinks: 0, bytes: 0, damaged: [], skipped: [] };
  const linked = new Map<bigint, Buffer>();
  let destRoot: Buffer = Buffer.from(dest);
  // A single file restored onto an existing directory lands inside it, under its own name (as cp does).
  const last = start.path[start.path.length - 1];
  if (start.stat.type !== 'dir' && last !== undefined && (await lstat(dest).catch(() => undefined))?.isDirectory()) {
    destRoot = join(destRoot, unescapeGuestName(last));
  }
  const report = () => options.progress?.(result.bytes, options.totalBytes ?? 0);
  // A directory whose listing is damaged is named like a damaged file, and the rest goes on.
  const onError = (relative: readonly string[], err: unknown): boolean => {
    if (!isDamage(err)) return false;
    result.damaged.push({ path: `${start.volume.label}/${[...start.path, ...relative].join('/')}`, message: (err as Error).message });
    return true;
  };
  for await (const { node, relative, event } of walkGuestTree(namespace, start, { onError })) {
    options.signal?.throwIfAborted();
    const target = relative.reduce<Buffer>((path, name) => join(path, unescapeGuestName(name)), destRoot);
    const shown = `${start.volume.label}/${node.path.join('/')}`;
    if (event === 'enter') {
      await makeDirectory(target, options.force === true, relative.length === 0);
      result.directories++;
      continue;
    }
    if (event === 'leave') {
      await finishAttributes(target, node.stat, options, false);
      continue;
    }
    await refuseExisting(target, options.force === true);
    switch (node.stat.type) {
      case 'file': {
        const first = node.stat.nlink > 1 ? linked.get(node.id) : undefined;
        if (first) {
          await link(first, target);
          result.hardLinks++;
          continue;
        }
        try {
          await restoreFile(node, target, options, (bytes) => {
            result.bytes += bytes;
            report();
          });
        } catch (err) {
          if (!isDamage(err)) throw err;
          result.damaged.push({ path: shown, message: (err as Error).message });
          continue;
        }
        result.files++;
        if (node.stat.nlink > 1 && linked.size < MAX_LINKS_REMEMBERED) linked.set(node.id, target);
        break;
      }
      case 'symlink':
        await symlink(await node.fs.readlink(node.id), target);
        await finishAttributes(target, node.stat, options, true);
        result.symlinks++;
        break;
      default:
        result.skipped.push({ path: shown, reason: `${node.stat.type} special files are not recreated` });
    }
  }
  return result;
}

function isDamage(err: unknown): boolean {
  return isCairnError(err, 'ERR_CHUNK_CORRUPT') || isCairnError(err, 'ERR_CHUNK_MISSING') || isCairnError(err, 'ERR_FORMAT_INVALID');
}

async function makeDirectory(path: Buffer, force: boolean, isRoot: boolean): Promise<void> {
  try {
    // Owner-writable while children are written; the guest's mode is set when the directory is left.
    await mkdir(path, { mode: 0o700 });
  } catch (err) {
    if (systemErrorCode(err) !== 'EEXIST') throw err;
    const existing = await lstat(path);
    if (!existing.isDirectory() || !force) {
      const what = isRoot ? 'exists' : 'exists in the destination';
      throw new CairnError('ERR_EXISTS', `${path.toString()} ${what}; use --force to restore into it`, { path: path.toString() });
    }
  }
}

async function refuseExisting(path: Buffer, force: boolean): Promise<void> {
  try {
    await lstat(path);
  } catch (err) {
    if (systemErrorCode(err) === 'ENOENT') return;
    throw err;
  }
  if (!force) throw new CairnError('ERR_EXISTS', `${path.toString()} exists; use --force to overwrite`, { path: path.toString() });
  await rm(path, { force: true });
}

async function finishAttributes(path: Buffer, stat: GuestStat, options: TreeRestoreOptions, isLink: boolean): Promise<void> {
  if (options.keepOwnership) await lchown(path, stat.uid, stat.gid).catch(() => undefined);
  if (isLink) {
    await lutimes(path, seconds(stat.atimeNs), seconds(stat.mtimeNs)).catch(() => undefined);
    return;
  }
  await chmod(path, stat.mode & 0o7777);
  await utimes(path, seconds(stat.atimeNs), seconds(stat.mtimeNs));
}

/** Writes one file's data extents (holes stay holes) under a temporary name, then renames it into place. */
async function restoreFile(node: GuestNode, target: Buffer, options: TreeRestoreOptions, onBytes: (bytes: number) => void): Promise<void> {
  // Beside the target (the same filesystem, so the rename is atomic), under a short name: the
  // target's own name may already be as long as a name can be.
  const temp = Buffer.concat([
    target.subarray(0, target.lastIndexOf(0x2f) + 1),
    Buffer.from(`.cairn-partial-${process.pid}-${++tempCounter}`),
  ]);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let ok = false;
  try {
    const size = node.stat.size;
    for (const extent of await node.fs.extents(node.id, 0, size)) {
      if (extent.kind === 'zero') continue;
      for (let offset = extent.offset; offset < extent.offset + extent.length; offset += PIECE) {
        options.signal?.throwIfAborted();
        const length = Math.min(PIECE, extent.offset + extent.length - offset);
        const data = await node.fs.read(node.id, offset, length);
        await handle.write(data, 0, data.length, offset);
        onBytes(data.length);
      }
    }
    await handle.truncate(size);
    ok = true;
  } finally {
    await handle.close();
    if (!ok) await rm(temp, { force: true });
  }
  if (options.keepOwnership) await lchown(temp, node.stat.uid, node.stat.gid).catch(() => undefined);
  await finishAttributes(temp, node.stat, { ...options, keepOwnership: false }, false);
  await rename(temp, target);
}
