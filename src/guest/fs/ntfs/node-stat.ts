import type { GuestNodeId, GuestStat } from '../../../core/guest-filesystem.js';
import { FILE_ATTR, FILE_NAME_TYPE, NTFS_TIME_OFFSET, SHOWN_FILE_ATTRIBUTES } from './layout.js';
import type { NodeFacts } from './node-kind.js';
import type { NtfsNode } from './node.js';

/**
 * Modes: NTFS keeps Windows ACLs, not POSIX modes, so they are made up as a default ntfs-3g mount
 * with umask 022 would show them, plus the readonly attribute: directories 0755, files and special
 * files 0644, or 0444 when readonly (the attribute means nothing on a Windows directory, so it does
 * not change one), symlinks 0777. Where WSL stored a POSIX mode ($LXMOD), its permission bits win.
 */
export const SYNTHESIZED_MODES = {
  DIR: 0o755,
  FILE: 0o644,
  READONLY_FILE: 0o444,
  SYMLINK: 0o777,
} as const;

/** FILETIME (100 ns since 1601, as a signed 64-bit count) to nanoseconds since 1970, exactly. */
export function fileTimeToNs(fileTime: bigint): bigint {
  return (fileTime - NTFS_TIME_OFFSET) * 100n;
}

const namesByAttributes = new Map<number, readonly string[]>();

/** The names `GuestStat.attributes` shows for these Windows file attributes (one shared array per combination). */
export function attributeNames(fileAttributes: number): readonly string[] {
  let names = namesByAttributes.get(fileAttributes);
  if (!names) {
    names = Object.freeze(SHOWN_FILE_ATTRIBUTES.filter(([bit]) => fileAttributes & bit).map(([, name]) => name));
    // Combinations are few in practice; a hostile volume could make many, so the memo stays small.
    if (namesByAttributes.size < 4096) namesByAttributes.set(fileAttributes, names);
  }
  return names;
}

/**
 * Hard links: the names of the file other than DOS 8.3 aliases (an alias names the same link as
 * its long name). ntfs-3g shows the MFT record's link count instead, which counts a separate
 * 8.3 alias as a second link. Directories show 1, as ntfs-3g does (find(1) then does not assume
 * that the count is two plus the subdirectories).
 */
export function linkCount(node: NtfsNode, isDir: boolean): number {
  if (isDir) return 1;
  return Math.max(1, node.names.filter((n) => n.namespace !== FILE_NAME_TYPE.DOS).length);
}

export function buildStat(id: GuestNodeId, node: NtfsNode, facts: NodeFacts, size: number, isStream: boolean): GuestStat {
  const info = node.info!;
  const kind = facts.kind;
  const type = isStream ? 'file' : kind.type;
  let mode: number;
  if (type === 'symlink') mode = SYNTHESIZED_MODES.SYMLINK;
  else if (type === 'dir') mode = SYNTHESIZED_MODES.DIR;
  else mode = info.fileAttributes & FILE_ATTR.READONLY ? SYNTHESIZED_MODES.READONLY_FILE : SYNTHESIZED_MODES.FILE;
  if (facts.lxMode !== undefined && !isStream && type !== 'symlink') mode = facts.lxMode & 0o7777;
  const stat: GuestStat = {
    id,
    type,
    size,
    mode,
    uid: 0,
    gid: 0,
    nlink: linkCount(node, type === 'dir'),
    mtimeNs: fileTimeToNs(info.modificationTime),
    atimeNs: fileTimeToNs(info.accessTime),
    ctimeNs: fileTimeToNs(info.mftChangeTime),
    birthtimeNs: fileTimeToNs(info.creationTime),
    attributes: attributeNames(info.fileAttributes),
  };
  if (!isStream && (kind.type === 'char' || kind.type === 'block')) {
    const { major, minor } = kind as { major: number; minor: number };
    // Linux's new_encode_dev, as GuestStat.rdev documents it.
    return { ...stat, rdev: ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0 };
  }
  return stat;
}
