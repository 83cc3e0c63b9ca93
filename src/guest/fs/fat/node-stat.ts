import type { GuestStat } from '../../../core/guest-filesystem.js';
import type { ShortEntry } from './dir-entry.js';
import { fatTimeToNs } from './fat-time.js';
import { ATTR } from './layout.js';

/** The DIR_Attr bits worth showing, by the names `GuestStat.attributes` uses. */
const SHOWN_ATTRIBUTES = [
  [ATTR.READ_ONLY, 'readonly'],
  [ATTR.HIDDEN, 'hidden'],
  [ATTR.SYSTEM, 'system'],
  [ATTR.ARCHIVE, 'archive'],
] as const;

/**
 * FAT keeps no owner or permissions, so they are synthesized, as Linux's vfat does with its default
 * masks: owner root, directories 0755, files 0644, and files with the read-only attribute 0444.
 * (Windows uses read-only on directories to mark customised folders, so Linux ignores it there, and
 * so does Cairn.) FAT has no link counts: 1, which tells `find` not to infer subdirectory counts,
 * as on btrfs. FAT has no change time; ctime is the modification time, as Linux reports it.
 * The access date has no time of day; the creation time is left out when its date was never set.
 */
export function statOfEntry(id: bigint, entry: ShortEntry, isDir: boolean, size: number): GuestStat {
  const mtimeNs = fatTimeToNs(entry.writeDate, entry.writeTime);
  const readOnly = (entry.attr & ATTR.READ_ONLY) !== 0;
  return {
    id,
    type: isDir ? 'dir' : 'file',
    size,
    mode: isDir ? 0o755 : readOnly ? 0o444 : 0o644,
    uid: 0,
    gid: 0,
    nlink: 1,
    mtimeNs,
    atimeNs: fatTimeToNs(entry.accessDate, 0),
    ctimeNs: mtimeNs,
    ...(entry.createDate !== 0 ? { birthtimeNs: fatTimeToNs(entry.createDate, entry.createTime, entry.createTenMs) } : {}),
    attributes: SHOWN_ATTRIBUTES.filter(([bit]) => entry.attr & bit).map(([, name]) => name),
  };
}

/** The root directory has no entry: no times (the epoch, as Linux shows them) and no attributes. */
export function statOfRoot(id: bigint, size: number): GuestStat {
  return { id, type: 'dir', size, mode: 0o755, uid: 0, gid: 0, nlink: 1, mtimeNs: 0n, atimeNs: 0n, ctimeNs: 0n, attributes: [] };
}
