// Walks a GuestFileSystem and the same filesystem as the kernel mounted it, side by side, and
// reports every difference: listings (names as bytes), types, sizes, modes, owners, link counts,
// times to the nanosecond, device numbers, symlink targets and file contents. The kernel is the
// oracle; any reader (ext4, XFS, btrfs) can be checked with it.
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import type { GuestFileSystem, GuestNodeId, GuestNodeType, GuestStat } from '../../src/core/guest-filesystem.js';

export interface OracleOptions {
  /** Files up to this size are compared byte for byte; larger ones by their data extents plus zero samples. */
  readonly fullCompareBytes?: number;
  /** Compare atime too (only meaningful on a read-only mount). Default true. */
  readonly atime?: boolean;
  /** Compare birth times when both sides report one. Default true. */
  readonly birthtime?: boolean;
  /** Also look every entry up by name and check it names the same node. Default true. */
  readonly lookups?: boolean;
  /**
   * Values the guest must show instead of the kernel's, for fields a reader makes up or knows
   * better (NTFS: synthesized modes, exact times from ntfs-3g's xattrs); fields left out compare
   * with the kernel's stat. `birthtimeNs` given here is compared even when the kernel has none.
   */
  readonly expected?: (path: Buffer, kernel: BigIntStats) => ExpectedFields;
  /** The guest's form of a symlink target the kernel shows (ntfs-3g puts the mount point before absolute ones). */
  readonly linkTarget?: (path: Buffer, kernelTarget: Buffer) => Buffer;
  /** Data extents may name fewer volume bytes than they hold (compressed data: NTFS, btrfs). Default false. */
  readonly compressedExtents?: boolean;
  /**
   * The inode number the kernel shows for a guest id, where ids are not inode numbers (btrfs packs
   * the subvolume into the id; every subvolume's root is inode 256). Default: the id itself.
   */
  readonly inodeNumber?: (id: GuestNodeId) => bigint | undefined;
  /** Fields not to compare for one node (the kernel invents the times of btrfs's subvolume placeholders). */
  readonly skipField?: (path: Buffer, field: string, stat: GuestStat) => boolean;
}

export type ExpectedFields = Partial<Record<'mode' | 'nlink' | 'size' | 'mtimeNs' | 'atimeNs' | 'ctimeNs' | 'birthtimeNs', unknown>>;

export interface OracleReport {
  readonly differences: string[];
  readonly nodes: number;
  readonly dirs: number;
  readonly files: number;
  readonly symlinks: number;
  readonly bytesCompared: number;
}

const CHUNK = 1024 * 1024;

function kernelType(st: BigIntStats): GuestNodeType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

const join = (dir: Buffer, name: Buffer): Buffer => Buffer.concat([dir, Buffer.from('/'), name]);
const show = (path: Buffer): string => JSON.stringify(path.toString('latin1'));

/** Walks both trees from the roots and returns what differs (an empty `differences` means they agree). */
export async function compareWithKernel(fs: GuestFileSystem, mountDir: string, options: OracleOptions = {}): Promise<OracleReport> {
  const differences: string[] = [];
  const counts = { nodes: 0, dirs: 0, files: 0, symlinks: 0, bytesCompared: 0 };
  const seenDirs = new Set<GuestNodeId>();
  const stack: { id: GuestNodeId; path: Buffer }[] = [{ id: fs.rootId, path: Buffer.from(mountDir) }];
  const differ = (path: Buffer, what: string): void => {
    if (differences.length < 200) differences.push(`${show(path)}: ${what}`);
  };
  await compareNode(fs, fs.rootId, Buffer.from(mountDir), options, differ, counts);
  while (stack.length > 0) {
    const { id, path } = stack.pop()!;
    if (seenDirs.has(id)) {
      differ(path, 'directory visited twice (a loop)');
      continue;
    }
    seenDirs.add(id);
    counts.dirs++;
    const kernelNames = readdirSync(path, { encoding: 'buffer' }).sort(Buffer.compare);
    const guestEntries = [];
    for await (const entry of fs.readdir(id)) guestEntries.push(entry);
    const guestNames = guestEntries.map((e) => e.name).sort(Buffer.compare);
    if (kernelNames.length !== guestNames.length || kernelNames.some((n, i) => !n.equals(guestNames[i]!))) {
      differ(path, `listing differs: kernel ${kernelNames.length} names, guest ${guestNames.length}`);
    }
    const kernelSet = new Set(kernelNames.map((n) => n.toString('hex')));
    for (const entry of guestEntries) {
      if (!kernelSet.has(entry.name.toString('hex'))) continue;
      const child = join(path, entry.name);
      if (options.lookups !== false) {
        const found = await fs.lookup(id, entry.name);
        if (!found || found.id !== entry.id) differ(child, `lookup gives ${found ? String(found.id) : 'nothing'}, readdir ${entry.id}`);
      }
      const stat = await compareNode(fs, entry.id, child, options, differ, counts);
      if (entry.type !== undefined && stat && entry.type !== stat.type) differ(child, `entry type ${entry.type}, inode type ${stat.type}`);
      if (stat?.type === 'dir') stack.push({ id: entry.id, path: child });
    }
    if (options.lookups !== false && (await fs.lookup(id, Buffer.from('no such name, surely'))) !== undefined)
      differ(path, 'lookup of a missing name found something');
  }
  return { differences, ...counts };
}

async function compareNode(
  fs: GuestFileSystem,
  id: GuestNodeId,
  path: Buffer,
  options: OracleOptions,
  differ: (path: Buffer, what: string) => void,
  counts: { nodes: number; files: number; symlinks: number; bytesCompared: number },
): Promise<GuestStat | undefined> {
  counts.nodes++;
  const st = lstatSync(path, { bigint: true });
  const g = await fs.stat(id);
  const fields: [string, unknown, unknown][] = [
    ['type', kernelType(st), g.type],
    ['id', st.ino, options.inodeNumber ? options.inodeNumber(g.id) : g.id],
    ['size', Number(st.size), g.size],
    ['mode', Number(st.mode) & 0o7777, g.mode],
    ['uid', Number(st.uid), g.uid],
    ['gid', Number(st.gid), g.gid],
    ['nlink', Number(st.nlink), g.nlink],
    ['mtimeNs', st.mtimeNs, g.mtimeNs],
    ['ctimeNs', st.ctimeNs, g.ctimeNs],
  ];
  if (options.atime !== false) fields.push(['atimeNs', st.atimeNs, g.atimeNs]);
  if (options.birthtime !== false && st.birthtimeNs !== 0n && g.birthtimeNs !== undefined)
    fields.push(['birthtimeNs', st.birthtimeNs, g.birthtimeNs]);
  if (g.type === 'char' || g.type === 'block') fields.push(['rdev', Number(st.rdev), g.rdev]);
  const expected = options.expected?.(path, st) ?? {};
  if (expected.birthtimeNs !== undefined && !fields.some(([name]) => name === 'birthtimeNs'))
    fields.push(['birthtimeNs', 0n, g.birthtimeNs]);
  for (const [name, kernel, guest] of fields) {
    if (options.skipField?.(path, name, g)) continue;
    const want = name in expected ? expected[name as keyof ExpectedFields] : kernel;
    if (want !== guest) differ(path, `${name}: kernel ${String(want)}, guest ${String(guest)}`);
  }
  if (g.type === 'symlink' && kernelType(st) === 'symlink') {
    counts.symlinks++;
    const kernelTarget = readlinkSync(path, { encoding: 'buffer' });
    const target = options.linkTarget ? options.linkTarget(path, kernelTarget) : kernelTarget;
    const guest = await fs.readlink(id);
    if (!target.equals(guest)) differ(path, `symlink target: kernel ${show(target)}, guest ${show(guest)}`);
  }
  if (g.type === 'file' && kernelType(st) === 'file') {
    counts.files++;
    counts.bytesCompared += await compareContent(fs, id, path, g.size, options, differ);
  }
  return g;
}

/** Compares a file's bytes; returns how many were compared. */
async function compareContent(
  fs: GuestFileSystem,
  id: GuestNodeId,
  path: Buffer,
  size: number,
  options: OracleOptions,
  differ: (path: Buffer, what: string) => void,
): Promise<number> {
  const fullCompareBytes = options.fullCompareBytes ?? 256 * 1024 * 1024;
  const fd = openSync(path, 'r');
  try {
    checkExtents(await fs.extents(id, 0, size), size, path, fd, options.compressedExtents === true, differ);
    const ranges: [number, number][] = [];
    if (size <= fullCompareBytes) {
      ranges.push([0, size]);
    } else {
      // Large sparse files: every data extent in full, and a window at each end of every zero extent.
      for (const extent of await fs.extents(id, 0, size)) {
        if (extent.kind === 'data') ranges.push([extent.offset, extent.length]);
        else {
          const w = Math.min(extent.length, 64 * 1024);
          ranges.push([extent.offset, w], [extent.offset + extent.length - w, w]);
        }
      }
    }
    let compared = 0;
    const kernelHash = createHash('sha256');
    const guestHash = createHash('sha256');
    const buffer = Buffer.alloc(CHUNK);
    for (const [start, length] of ranges) {
      for (let at = start; at < start + length; at += CHUNK) {
        const n = Math.min(CHUNK, start + length - at);
        const got = readSync(fd, buffer, 0, n, at);
        kernelHash.update(buffer.subarray(0, got));
        const guest = await fs.read(id, at, n);
        guestHash.update(guest);
        compared += n;
      }
    }
    const [k, gd] = [kernelHash.digest('hex'), guestHash.digest('hex')];
    if (k !== gd) differ(path, `content differs (sha256 kernel ${k.slice(0, 16)}, guest ${gd.slice(0, 16)})`);
    return compared;
  } finally {
    closeSync(fd);
  }
}

/** Extents must cover [0, size) in order without gaps, data with volume ranges that add up, zeros where the kernel reads zeros. */
function checkExtents(
  extents: readonly { offset: number; length: number; kind: string; volumeRanges?: readonly { length: number }[] }[],
  size: number,
  path: Buffer,
  fd: number,
  compressed: boolean,
  differ: (path: Buffer, what: string) => void,
): void {
  let at = 0;
  const probe = Buffer.alloc(4096);
  for (const extent of extents) {
    if (extent.offset !== at || extent.length <= 0) differ(path, `extent at ${extent.offset}+${extent.length} does not continue ${at}`);
    if (extent.kind === 'data' && extent.volumeRanges) {
      const sum = extent.volumeRanges.reduce((n, r) => n + r.length, 0);
      if (compressed ? sum === 0 : sum !== extent.length)
        differ(path, `data extent at ${extent.offset} has volume ranges of ${sum} bytes for ${extent.length}`);
    }
    if (extent.kind === 'zero') {
      for (const start of [extent.offset, extent.offset + extent.length - Math.min(extent.length, probe.length)]) {
        const got = readSync(fd, probe, 0, Math.min(extent.length, probe.length), start);
        if (probe.subarray(0, got).some((b) => b !== 0)) differ(path, `zero extent at ${extent.offset} holds data in the kernel's view`);
      }
    }
    at = extent.offset + extent.length;
  }
  if (at !== size) differ(path, `extents end at ${at}, size ${size}`);
}
