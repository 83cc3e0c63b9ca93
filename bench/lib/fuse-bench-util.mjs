// Helpers for bench/fuse-read.mjs: a test image, child processes, timing, cache dropping.
import { spawn, execFileSync } from 'node:child_process';
import { createWriteStream, readdirSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export const MiB = 1024 * 1024;

/**
 * A disk image that behaves like a used VM disk: 60% incompressible (random), 20% compressible
 * text-like data, 20% zeros, in 1 MiB runs spread over the disk (deterministic layout, random bytes).
 */
export async function makeMixedImage(path, size) {
  const out = createWriteStream(path);
  const text = Buffer.from('Lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789\n'.repeat(Math.ceil(MiB / 66))).subarray(
    0,
    MiB,
  );
  for (let i = 0; i < size / MiB; i++) {
    const kind = (i * 7) % 10;
    const block = kind < 6 ? randomBytes(MiB) : kind < 8 ? text : Buffer.alloc(MiB);
    if (!out.write(block)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r, j) => out.end((err) => (err ? j(err) : r())));
}

export function run(cmd, args, env = {}) {
  return execFileSync(cmd, args, {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * MiB,
  });
}

export function startBackground(cmd, args, env = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  child.output = () => output;
  return child;
}

export async function waitFor(what, check, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sequential read with dd bs=1M; returns MiB/s. */
export function ddRead(path) {
  const started = process.hrtime.bigint();
  run('dd', [`if=${path}`, 'of=/dev/null', 'bs=1M', 'status=none']);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return statSync(path).size / MiB / seconds;
}

/** Drops the page cache of every file under `paths` (posix_fadvise DONTNEED via dd iflag=nocache). */
export function dropFileCache(paths) {
  const files = [];
  const walk = (p) => {
    const st = statSync(p);
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
    else if (st.isFile()) files.push(p);
  };
  for (const p of paths) walk(p);
  for (const file of files) run('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export function isMounted(dir) {
  return run('cat', ['/proc/self/mountinfo'])
    .split('\n')
    .some((line) => line.split(' ')[4] === dir);
}

/**
 * The ceiling of any fuse-native filesystem here: one read-only file of `size` bytes answered from a
 * static buffer (no decode, no cache), mounted like cairn's (kernel_cache, 128 KiB requests). Run
 * as a child process (`node fuse-bench-util.mjs null-mount DIR SIZE`): the bench's own thread
 * blocks in dd and could not serve the requests. Unmounts on SIGINT.
 */
async function nullMount(dir, size) {
  const { createRequire } = await import('node:module');
  const Fuse = createRequire(import.meta.url)('fuse-native');
  const block = Buffer.alloc(MiB, 7);
  const stat = (mode, bytes) => ({ mode, size: bytes, uid: 0, gid: 0, nlink: 1, mtime: 0, atime: 0, ctime: 0 });
  const ops = {
    getattr: (path, cb) =>
      path === '/' ? cb(0, stat(0o40555, 4096)) : path === '/null.raw' ? cb(0, stat(0o100444, size)) : cb(Fuse.ENOENT),
    readdir: (_path, cb) => cb(0, ['null.raw']),
    open: (_path, _flags, cb) => cb(0, 1),
    release: (_path, _fd, cb) => cb(0),
    read: (_path, _fd, buf, len, pos, cb) => {
      const length = Math.max(0, Math.min(len, size - pos, MiB));
      block.copy(buf, 0, 0, length);
      cb(length);
    },
  };
  const fuse = new Fuse(dir, ops, { kernelCache: true, maxRead: MiB, fsname: 'cairn-null,ro' });
  await new Promise((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  process.once('SIGINT', () => fuse.unmount(() => process.exit(0)));
}

if (process.argv[2] === 'null-mount') await nullMount(process.argv[3], Number(process.argv[4]));
