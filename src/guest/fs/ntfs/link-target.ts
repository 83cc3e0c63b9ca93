/**
 * Turning a Windows symlink or junction target into a POSIX one, the way ntfs-3g's reparse.c
 * ntfs_make_symlink does, except that a target on the volume is given from the volume's root
 * (Cairn serves each volume as its own tree, where absolute targets resolve from the volume root
 * as in a chroot) instead of under a mount point:
 *
 * - `\??\C:\Users\Me` (junctions, absolute symlinks) and `C:\Users\Me`: the path is looked up from
 *   the root, component by component, ignoring case as Windows does; when it is found the target
 *   is `/Users/Me` spelt as the directory entries spell it. Any drive letter counts: the volume
 *   does not know its own letter, so a path that exists on it is taken to be on it. A path that
 *   does not resolve stays as text, `C:\Users\Me` (ntfs-3g points it into /.NTFS-3G instead).
 * - `\\?\Volume{…}\…`, `\??\UNC\server\share\…` and other device paths: text, the UNC form as
 *   `\\server\share\…`, the others as stored.
 * - `\Users\Me` (rooted, no drive): `/Users/Me`, corrected where it resolves.
 * - relative (`..\Docs\a.txt`): `../Docs/a.txt`, resolved from the link's directory and corrected
 *   where it resolves, kept as written where it does not (ntfs-3g refuses such links).
 *
 * Correction stops at the first component that is missing or is not a plain directory (a file, a
 * symlink, a junction): the rest is kept as written, with '/' between components.
 */

/** What resolving a target needs from the filesystem. */
export interface LinkResolver {
  readonly root: number;
  /** The entry named like `name` (ignoring case) in directory `dir`: its spelling, and whether to go on through it. */
  child(dir: number, name: string): Promise<{ record: number; name: string; directory: boolean } | undefined>;
  /** The directory that holds `record` (its first non-DOS name's parent). */
  parent(record: number): Promise<number>;
}

/** Components corrected at most: a longer target keeps the rest as written. */
const MAX_COMPONENTS = 256;

const DEVICE_PREFIXES = ['\\??\\', '\\\\?\\'];
const DRIVE = /^[A-Za-z]:(\\|$)/;

/** The POSIX target (a string of UTF-16 code units) of a symlink or junction's substitute name. */
export async function windowsLinkTarget(substituteName: string, linkDir: number, resolver: LinkResolver): Promise<string> {
  let path = substituteName;
  const prefix = DEVICE_PREFIXES.find((p) => path.startsWith(p));
  if (prefix) path = path.slice(prefix.length);
  if (DRIVE.test(path)) {
    const resolved = await resolve(resolver.root, split(path.slice(3)), resolver);
    return resolved.complete ? `/${resolved.path}` : path;
  }
  if (prefix) return path.startsWith('UNC\\') ? `\\\\${path.slice(4)}` : substituteName;
  if (path.startsWith('\\')) return `/${(await resolve(resolver.root, split(path), resolver)).path}`;
  return (await resolve(linkDir, split(path), resolver)).path;
}

function split(path: string): string[] {
  return path.split(/[\\/]/).filter((c) => c.length > 0);
}

async function resolve(start: number, parts: readonly string[], resolver: LinkResolver): Promise<{ path: string; complete: boolean }> {
  const out: string[] = [];
  let dir: number | undefined = start;
  let complete = true;
  for (const [i, part] of parts.entries()) {
    if (dir === undefined || i >= MAX_COMPONENTS) {
      out.push(part);
      continue;
    }
    if (part === '.') {
      out.push(part);
    } else if (part === '..') {
      out.push(part);
      dir = dir === resolver.root ? dir : await resolver.parent(dir);
    } else {
      const found = await resolver.child(dir, part);
      if (!found) {
        complete = false;
        dir = undefined;
        out.push(part);
      } else {
        out.push(found.name);
        dir = found.directory ? found.record : undefined;
      }
    }
  }
  return { path: out.join('/'), complete };
}
