import type { GuestNodeType, GuestStat } from '../core/guest-filesystem.js';

/** An exact timestamp as ISO 8601 with nanoseconds (`2026-11-21T05:12:33.123456789Z`). */
export function isoFromNs(ns: bigint): string {
  const second = ns >= 0n ? ns / 1_000_000_000n : -((-ns + 999_999_999n) / 1_000_000_000n);
  const fraction = ns - second * 1_000_000_000n;
  const base = new Date(Number(second) * 1000).toISOString().slice(0, 19);
  return `${base}.${fraction.toString().padStart(9, '0')}Z`;
}

const TYPE_LETTERS: Record<GuestNodeType, string> = { file: '-', dir: 'd', symlink: 'l', char: 'c', block: 'b', fifo: 'p', socket: 's' };

/** `drwxr-xr-x` as ls -l draws it, setuid/setgid/sticky included. */
export function modeString(type: GuestNodeType, mode: number): string {
  const bits = ['r', 'w', 'x', 'r', 'w', 'x', 'r', 'w', 'x'].map((letter, i) => ((mode >> (8 - i)) & 1 ? letter : '-'));
  const special = (index: number, flag: number, on: string, off: string) => {
    if (mode & flag) bits[index] = bits[index] === 'x' ? on : off;
  };
  special(2, 0o4000, 's', 'S');
  special(5, 0o2000, 's', 'S');
  special(8, 0o1000, 't', 'T');
  return TYPE_LETTERS[type] + bits.join('');
}

/** The JSON shape of a guest entry, the same in `ls`, `stat` and `versions`. */
export interface GuestEntryJson {
  name: string;
  path: string;
  type: GuestNodeType;
  size: number;
  mode: string;
  uid: number;
  gid: number;
  nlink: number;
  mtime: string;
  atime: string;
  ctime: string;
  birthtime?: string;
  target?: string;
  attributes?: readonly string[];
}

export function guestEntryJson(name: string, path: string, stat: GuestStat, target?: string): GuestEntryJson {
  return {
    name,
    path,
    type: stat.type,
    size: stat.size,
    mode: (stat.mode & 0o7777).toString(8).padStart(4, '0'),
    uid: stat.uid,
    gid: stat.gid,
    nlink: stat.nlink,
    mtime: isoFromNs(stat.mtimeNs),
    atime: isoFromNs(stat.atimeNs),
    ctime: isoFromNs(stat.ctimeNs),
    ...(stat.birthtimeNs !== undefined ? { birthtime: isoFromNs(stat.birthtimeNs) } : {}),
    ...(target !== undefined ? { target } : {}),
    ...(stat.attributes && stat.attributes.length > 0 ? { attributes: stat.attributes } : {}),
  };
}
