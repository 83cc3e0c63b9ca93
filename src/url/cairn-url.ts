import { CairnError } from '../core/errors.js';

/** A parsed pseudo-URL `cairn://VM/POINT/DISK[/PARTITION[/PATH]]`; every part after `vm` is optional. */
export interface CairnUrl {
  vm?: string;
  point?: string;
  disk?: string;
  /** 1-based partition number, from `p1`, `p2`, … */
  partition?: number;
  /** Path inside the partition's filesystem, without a leading slash. */
  path?: string;
}

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
export function parseCairnUrl(text: string): CairnUrl {
  const path = text.startsWith(SCHEME) ? text.slice(SCHEME.length) : text;
  const parts = path.split('/').filter((p, i, all) => p !== '' || i < all.length - 1);
  if (parts.some((p) => p === '')) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `invalid URL '${text}': empty path component`, { url: text });
  }
  const [vm, point, disk, partition, ...rest] = parts.map((p) => decodeURIComponent(p));
  const url: CairnUrl = {};
  if (vm !== undefined) {
    assertValidName('VM', vm);
    url.vm = vm;
  }
  if (point !== undefined) {
    if (point !== 'latest') assertValidName('point', point);
    url.point = point;
  }
  if (disk !== undefined) {
    assertValidName('disk', disk);
    url.disk = disk;
  }
  if (partition !== undefined) {
    const match = PARTITION_PATTERN.exec(partition);
    if (!match) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `invalid partition '${partition}' in '${text}': expected p1, p2, …`, {
        url: text,
      });
    }
    url.partition = Number(match[1]);
  }
  if (rest.length > 0) url.path = rest.join('/');
  return url;
}

/** The path part shared by NBD export names and the FUSE tree: `VM/POINT/DISK[/pN[/PATH]]`. */
export function formatCairnPath(url: CairnUrl): string {
  const parts: string[] = [];
  for (const part of [url.vm, url.point, url.disk]) {
    if (part === undefined) break;
    parts.push(part);
  }
  if (url.partition !== undefined) parts.push(`p${url.partition}`);
  if (url.path !== undefined) parts.push(url.path);
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
