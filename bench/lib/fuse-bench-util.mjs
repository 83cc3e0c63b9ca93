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
