import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The optional addon in native/ (built at install); every function here has a pure-JS fallback. */
interface NativeAddon {
  seekData(fd: number, offset: number): number;
  seekHole(fd: number, offset: number): number;
  blockDeviceSize(fd: number): number;
  syncfs(fd: number): void;
  startWriteback?(fd: number): void;
}

function loadAddon(): NativeAddon | undefined {
  if (process.env.CAIRN_NO_NATIVE === '1') return undefined;
  const here = dirname(fileURLToPath(import.meta.url));
  const require = createRequire(import.meta.url);
  // dist/util/native.js and src/util/native.ts both sit two levels below the package root.
  try {
    return require(join(here, '..', '..', 'native', 'build', 'Release', 'cairn_native.node')) as NativeAddon;
  } catch {
    return undefined;
  }
}

const addon = loadAddon();

/** A range of a file that holds data; everything between data ranges is a hole. */
export interface DataRange {
  offset: number;
  length: number;
}

/**
 * The data ranges of an open file between `offset` and `size`, via SEEK_DATA/SEEK_HOLE. Without the
 * addon, or on a filesystem that does not support them, the whole range is reported as data, which
 * is correct, only slower (the zeros are then read and detected).
 */
export function dataRanges(fd: number, offset: number, size: number): DataRange[] {
  if (!addon) return size > offset ? [{ offset, length: size - offset }] : [];
  const ranges: DataRange[] = [];
  let pos = offset;
  try {
    while (pos < size) {
      const dataStart = addon.seekData(fd, pos);
      if (dataStart < 0 || dataStart >= size) break;
      const holeStart = Math.min(size, addon.seekHole(fd, dataStart));
      ranges.push({ offset: dataStart, length: holeStart - dataStart });
      pos = holeStart;
    }
  } catch {
    return size > offset ? [{ offset, length: size - offset }] : [];
  }
  return ranges;
}

/** Size of a block device: the addon's BLKGETSIZE64, else sysfs (512-byte sectors). */
export async function blockDeviceSize(fd: number, rdev: number): Promise<number> {
  if (addon) return addon.blockDeviceSize(fd);
  // Linux encodes dev_t with the minor split around the major; Node hands us the raw number.
  const major = Number((BigInt(rdev) >> 8n) & 0xfffn);
  const minor = Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));
  const sectors = await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
  return Number(sectors.trim()) * 512;
}

/** Flushes the filesystem holding `fd` with one syncfs(2); returns false when unavailable. */
export function syncFilesystem(fd: number): boolean {
  if (!addon) return false;
  addon.syncfs(fd);
  return true;
}

/** Starts writing a file's dirty pages to disk without waiting; a no-op without the addon. */
export function startWriteback(fd: number): void {
  try {
    addon?.startWriteback?.(fd);
  } catch {
    // Only a hint: durability comes from syncFilesystem or fsync later.
  }
}
