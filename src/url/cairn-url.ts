import { CairnError } from '../core/errors.js';

/**
 * A parsed pseudo-URL `cairn://VM/POINT/DISK[/VOLUME][/PATH]`; every part after `vm` is optional.
 * What follows DISK (a partition `pN`, `lvm/VG/LV`, and a path inside the guest's filesystem, or a
 * path straight away when the filesystem fills the disk) depends on what the disk holds, so only
 * the namespace resolver (src/restore/namespace) can split it: `rest` keeps those segments as typed
 * (guest names escaped as in guest-name.ts).
 */
export interface CairnUrl {
  vm?: string;
  point?: string;
  disk?: string;
  rest?: string[];
  /**
   * The URL ends with '/': a volume then stands for the root directory of its filesystem rather
   * than its raw image (`cairn restore cairn://vm/latest/sda/p1/ DIR` restores files, without the
   * slash the partition image).
   */
  directory?: boolean;
  /** 1-based partition number when `rest` starts with `p1`, `p2`, … (kept for the image paths that only know partitions). */
  partition?: number;
  /** The segments after the partition, joined by '/'. */
  path?: string;
}

export interface ParseOptions {
  /** Accept `*` as the point: every point of the VM (`cairn versions`). */
  allowPointWildcard?: boolean;
}

export const POINT_WILDCARD = '*';

const SCHEME = 'cairn://';
/** VM, disk and point names: no slashes, no leading dot, printable. */
const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$/;
const PARTITION_PATTERN = /^p([1-9][0-9]{0,3})$/;

export function isValidName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

export function assertValidName(kind: string, name: string): void {
  if (!isValidName(name)) {
    throw new CairnError(
      'ERR_INVALID_ARGUMENT',
      `invalid ${kind} name '${name}': use letters, digits, '_', '.', '+', '-' (at most 128, not starting with '.' or '-')`,
      { kind, name },
    );
  }
}

/**
 * Parses `cairn://VM/POINT/DISK/p1/PATH` or the bare path form `VM/POINT/DISK` that NBD export names
 * and FUSE paths use.
 */
export function parseCairnUrl(text: string, options: ParseOptions = {}): CairnUrl {
  const path = text.startsWith(SCHEME) ? text.slice(SCHEME.length) : text;
  const parts = path.split('/').filter((p, i, all) => p !== '' || i < all.length - 1);
  if (parts.some((p) => p === '')) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `invalid URL '${text}': empty path component`, { url: text });
  }
  if (parts.some((p) => p === '.' || p === '..')) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `invalid URL '${text}': '.' and '..' are not path components here`, { url: text });
  }
  const [vm, point, disk, ...rest] = parts;
  const url: CairnUrl = {};
  if (path.endsWith('/') && disk !== undefined) url.directory = true;
  if (vm !== undefined) {
    assertValidName('VM', vm);
    url.vm = vm;
  }
  if (point !== undefined) {
    if (point !== 'latest' && !(options.allowPointWildcard && point === POINT_WILDCARD)) assertValidName('point', point);
    url.point = point;
  }
  if (disk !== undefined) {
    assertValidName('disk', disk);
    url.disk = disk;
  }
  if (rest.length > 0) {
    url.rest = rest;
    const match = PARTITION_PATTERN.exec(rest[0]!);
    if (match) {
      url.partition = Number(match[1]);
      if (rest.length > 1) url.path = rest.slice(1).join('/');
    }
  }
  return url;
}

/** The path part shared by NBD export names and the FUSE tree: `VM/POINT/DISK[/VOLUME][/PATH]`. */
export function formatCairnPath(url: CairnUrl): string {
  const parts: string[] = [];
  for (const part of [url.vm, url.point, url.disk]) {
    if (part === undefined) break;
    parts.push(part);
  }
  if (url.disk !== undefined && url.rest !== undefined) parts.push(...url.rest);
  else if (url.disk !== undefined && url.partition !== undefined) {
    parts.push(`p${url.partition}`);
    if (url.path !== undefined) parts.push(url.path);
  }
  return parts.join('/');
}

export function formatCairnUrl(url: CairnUrl): string {
  return SCHEME + formatCairnPath(url);
}

/** Narrows a URL to one that names a disk, or throws a clear error. */
export function requireDiskUrl(url: CairnUrl, text: string): Required<Pick<CairnUrl, 'vm' | 'point' | 'disk'>> & CairnUrl {
  if (url.vm === undefined || url.point === undefined || url.disk === undefined) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `'${text}' does not name a disk: expected cairn://VM/POINT/DISK`, {
      url: text,
    });
  }
  return url as Required<Pick<CairnUrl, 'vm' | 'point' | 'disk'>> & CairnUrl;
}
