// FAT fixtures made with the real tools (mkfs.fat, mtools, sgdisk) and the oracles that read them
// back (mtools, 7-Zip, fsck.fat). The test kernel has no vfat, so nothing is mounted. Every tool runs
// with TZ=UTC and code page 437, the settings Cairn's reader documents, and fixed times, so the same
// call makes the same image bytes (the fuzz test replays seeds over them).
import { execFileSync } from 'node:child_process';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BlockReader } from '../../src/core/block-reader.js';
import type { GuestFileSystem, GuestStat } from '../../src/core/guest-filesystem.js';
import type { AllocationExtent } from '../../src/core/extent.js';
import { makeSparseFile } from './disk-images.js';

export const MiB = 1024 * 1024;

/** A file (its bytes) or, as `null`, a directory. Paths use '/', relative to the volume root. */
export type FatTree = Record<string, Buffer | null>;

/** The environment every FAT tool runs in (see the file comment). */
export function fatToolEnv(workDir: string): NodeJS.ProcessEnv {
  const rc = join(workDir, 'mtoolsrc');
  writeFileSync(rc, 'default_codepage=437\nmtools_skip_check=1\n');
  return {
    ...process.env,
    MTOOLSRC: rc,
    MTOOLS_SKIP_CHECK: '1',
    TZ: 'UTC',
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    SOURCE_DATE_EPOCH: '1600000000',
  };
}

export function tool(env: NodeJS.ProcessEnv, cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * MiB });
}

export function toolBytes(env: NodeJS.ProcessEnv, cmd: string, args: string[]): Buffer {
  return execFileSync(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * MiB });
}

/** Deterministic bytes (a 32-bit LCG), so image contents repeat across runs. */
export function patternBytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

export interface FatImageSpec {
  readonly fatBits: 12 | 16 | 32;
  readonly size: number;
  /** mkfs.fat -s. */
  readonly sectorsPerCluster?: number;
  /** Volume id as 8 hex digits (mkfs.fat -i). */
  readonly volumeId: string;
  readonly label?: string;
  readonly tree: FatTree;
  /** Modification time (seconds since the epoch, even) given to every file and directory of the tree. */
  readonly mtime?: number;
}

/**
 * Makes a FAT image at `path`: mkfs.fat, then the tree written to a host directory with fixed times
 * and copied in with `mcopy -s -m` (which keeps those times and names the long names).
 */
export function makeFatImage(env: NodeJS.ProcessEnv, path: string, spec: FatImageSpec, workDir: string): void {
  makeSparseFile(path, spec.size);
  const mkfsArgs = ['-F', String(spec.fatBits), '-i', spec.volumeId];
  if (spec.sectorsPerCluster) mkfsArgs.push('-s', String(spec.sectorsPerCluster));
  if (spec.label) mkfsArgs.push('-n', spec.label);
  tool(env, 'mkfs.fat', [...mkfsArgs, path]);
  const source = join(workDir, `tree-${Math.random().toString(36).slice(2)}`);
  mkdirSync(source);
  const paths = Object.keys(spec.tree).sort();
  for (const rel of paths) {
    const content = spec.tree[rel];
    const host = join(source, rel);
    mkdirSync(content === null ? host : join(host, '..'), { recursive: true });
    if (content) writeFileSync(host, content);
  }
  const time = spec.mtime ?? 1_600_000_000;
  // Every path and every directory above one, deepest first, so that setting a directory's time is
  // not undone by writing into it.
  const all = new Set<string>();
  for (const rel of paths) {
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) all.add(parts.slice(0, i).join('/'));
  }
  for (const rel of [...all].sort((a, b) => b.split('/').length - a.split('/').length)) utimesSync(join(source, rel), time, time);
  const tops = [...new Set(paths.map((p) => p.split('/')[0] ?? p))].map((top) => join(source, top));
  if (tops.length > 0) tool(env, 'mcopy', ['-s', '-m', '-Q', '-i', path, ...tops, '::/']);
}

/** One line of `mdir`: the 8.3 name as mtools shows it, size (undefined for a directory), long name. */
export interface MdirEntry {
  readonly shortName: string;
  readonly size?: number;
  readonly date: string;
  readonly time: string;
  readonly longName?: string;
}

/** `mdir -/ -a` of the whole volume, by directory path ('/' for the root, else '/a/b'), '.' and '..' left out. */
export function mdirTree(env: NodeJS.ProcessEnv, image: string): Map<string, MdirEntry[]> {
  const out = tool(env, 'mdir', ['-/', '-a', '-i', image, '::/']);
  const dirs = new Map<string, MdirEntry[]>();
  let current: MdirEntry[] | undefined;
  for (const line of out.split('\n')) {
    const header = /^Directory for ::(.*)$/.exec(line);
    if (header) {
      current = [];
      dirs.set(header[1] === '' ? '/' : (header[1] ?? '/'), current);
      continue;
    }
    const m = /^(.{8}) (.{3}) +(<DIR>|\d+) +(\d{4}-\d\d-\d\d) +(\d+:\d\d) ?(?: (.*))?$/.exec(line);
    if (!m || !current) continue;
    const base = (m[1] ?? '').trimEnd();
    const ext = (m[2] ?? '').trimEnd();
    if (base === '.' || base === '..') continue;
    current.push({
      shortName: ext ? `${base}.${ext}` : base,
      ...(m[3] === '<DIR>' ? {} : { size: Number(m[3]) }),
      date: m[4] ?? '',
      time: m[5] ?? '',
      ...(m[6] ? { longName: m[6] } : {}),
    });
  }
  return dirs;
}

/** `mattrib -/` of the whole volume: path → the attribute names Cairn uses. */
export function mattribTree(env: NodeJS.ProcessEnv, image: string): Map<string, string[]> {
  const out = tool(env, 'mattrib', ['-/', '-i', image, '::/']);
  const attrs = new Map<string, string[]>();
  for (const line of out.split('\n')) {
    const m = /^ {2}(.) {2}(.)(.)(.) {5}::(.*)$/.exec(line);
    if (!m) continue;
    const names: string[] = [];
    if (m[4] === 'R') names.push('readonly');
    if (m[3] === 'H') names.push('hidden');
    if (m[2] === 'S') names.push('system');
    if (m[1] === 'A') names.push('archive');
    attrs.set(m[5] ?? '', names);
  }
  return attrs;
}

/** `mshowfat`: the file's clusters as [first, last] runs. */
export function mshowfatRuns(env: NodeJS.ProcessEnv, image: string, path: string): [number, number][] {
  const out = tool(env, 'mshowfat', ['-i', image, `::${path}`]);
  return [...out.matchAll(/<(\d+)(?:-(\d+))?>/g)].map((m) => [Number(m[1]), Number(m[2] ?? m[1])]);
}

/** Where cluster 2 starts and the cluster size, from `minfo` (not from Cairn's own parse). */
export function minfoGeometry(
  env: NodeJS.ProcessEnv,
  image: string,
): { fatOffset: number; rootOffset: number; dataOffset: number; clusterSize: number } {
  const out = tool(env, 'minfo', ['-i', image, '::']);
  const num = (label: string): number => {
    const m = new RegExp(`^${label}: (\\d+)`, 'm').exec(out);
    if (!m) throw new Error(`minfo printed no "${label}"`);
    return Number(m[1]);
  };
  const sector = num('sector size');
  const small = num('sectors per fat');
  const perFat = small !== 0 ? small : Number(/^Big fatlen=(\d+)/m.exec(out)?.[1] ?? NaN);
  const reserved = num('reserved \\(boot\\) sectors');
  const fats = num('fats');
  const rootSectors = Math.ceil((num('max available root directory slots') * 32) / sector);
  return {
    fatOffset: reserved * sector,
    rootOffset: (reserved + fats * perFat) * sector,
    dataOffset: (reserved + fats * perFat + rootSectors) * sector,
    clusterSize: num('cluster size') * sector,
  };
}

/** 7-Zip's reading of a FAT image (`7zz l -slt`): path → its properties, a second oracle with seconds and centiseconds. */
export function sevenZipTree(env: NodeJS.ProcessEnv, image: string): Map<string, Record<string, string>> {
  const out = tool(env, '7zz', ['l', '-slt', '-sccUTF-8', image]);
  const entries = new Map<string, Record<string, string>>();
  const body = out.split(/^----------$/m)[1] ?? '';
  for (const block of body.split(/\n\n+/)) {
    const props: Record<string, string> = {};
    for (const line of block.split('\n')) {
      const m = /^([^=]+?) = ?(.*)$/.exec(line);
      if (m?.[1]) props[m[1]] = m[2] ?? '';
    }
    if (props.Path) entries.set(props.Path, props);
  }
  return entries;
}

/**
 * A volume held in memory, optionally with some bytes replaced (a fuzzed image, without copying the
 * whole base for each case). Reads outside it throw a plain RangeError, as a file reader would: the
 * FAT reader must never ask for one, and a fuzz run counts it as a failure.
 */
export class BufferVolume implements BlockReader {
  readonly blockSize = 4096;
  readonly size: number;
  private readonly patchOffsets: number[];

  constructor(
    private readonly bytes: Buffer,
    private readonly patches: ReadonlyMap<number, number> = new Map(),
  ) {
    this.size = bytes.length;
    this.patchOffsets = [...patches.keys()];
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`read ${offset}+${length} past ${this.size}`);
    }
    const out = Buffer.from(this.bytes.subarray(offset, offset + length));
    for (const at of this.patchOffsets) {
      if (at >= offset && at < offset + length) out[at - offset] = this.patches.get(at) ?? 0;
    }
    return out;
  }

  async allocation(offset: number, length: number): Promise<AllocationExtent[]> {
    return [{ offset, length, zero: false }];
  }
}

export interface WalkedNode {
  readonly path: string;
  readonly stat: GuestStat;
  readonly names: string[];
}

/** Every node of a guest filesystem by path ('/' for the root), with each directory's listed names. */
export async function walkGuestFs(fs: GuestFileSystem): Promise<Map<string, WalkedNode>> {
  const nodes = new Map<string, WalkedNode>();
  const visit = async (path: string, id: bigint): Promise<void> => {
    const stat = await fs.stat(id);
    const names: string[] = [];
    nodes.set(path, { path, stat, names });
    if (stat.type !== 'dir') return;
    for await (const entry of fs.readdir(id)) {
      const name = entry.name.toString('utf8');
      names.push(name);
      await visit(path === '/' ? `/${name}` : `${path}/${name}`, entry.id);
    }
  };
  await visit('/', fs.rootId);
  return nodes;
}

/** The node id of `path` ('/a/b'), by lookups from the root. */
export async function lookupPath(fs: GuestFileSystem, path: string): Promise<bigint> {
  let id = fs.rootId;
  for (const part of path.split('/').filter(Boolean)) {
    const hit = await fs.lookup(id, Buffer.from(part));
    if (!hit) throw new Error(`no ${part} in ${path}`);
    id = hit.id;
  }
  return id;
}
