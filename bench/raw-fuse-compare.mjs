// EXPERIMENT (issue 5): would a raw /dev/fuse transport (bench/lib/raw-fuse-null.mjs) raise the FUSE
// ceiling of `cairn mount`? Reads one SIZE file with dd bs=1M, cold and warm, side by side in one run:
// the plain file on disk, the fuse-native null file (libfuse 2.9, 128 KiB requests; default and 1 MiB
// bdi read-ahead), the raw null file with several max_pages / read_ahead_kb settings, and (warm only)
// a tmpfs copy with 4 KiB and with huge pages; prints medians plus the READ request sizes the raw
// server saw. Needs root. Run under the shared lock:
//   flock /work/bench.lock node bench/raw-fuse-compare.mjs [sizeMiB=2048] [runs=3]
// Env: RAW_FUSE_CONFIGS="32/128,256/128,256/1024" (maxPages/readAheadKiB), RAW_FUSE_WORK=DIR keeps the
// plain file between runs.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiB, ddRead, dropFileCache, isMounted, makeMixedImage, median, run, startBackground, waitFor } from './lib/fuse-bench-util.mjs';

const sizeMiB = Number(process.argv[2] ?? 2048);
const runs = Number(process.argv[3] ?? 3);
const configs = (process.env.RAW_FUSE_CONFIGS ?? '32/128,32/1024,256/128,256/1024,256/4096')
  .split(',')
  .map((c) => c.split('/').map(Number));
const lib = join(dirname(fileURLToPath(import.meta.url)), 'lib');
const keptWork = process.env.RAW_FUSE_WORK;
const work = keptWork ?? mkdtempSync(join(tmpdir(), 'cairn-raw-fuse-'));
mkdirSync(work, { recursive: true });
const image = join(work, 'plain.img');
const mnt = join(work, 'mnt');
mkdirSync(mnt, { recursive: true });
const children = new Set();

/** Starts the raw server; resolves once it printed `ready`. Collects its JSON counter lines. */
async function startRaw(maxPages, readAheadKiB) {
  const child = spawn('node', [join(lib, 'raw-fuse-null.mjs'), mnt, String(sizeMiB * MiB), String(maxPages), String(readAheadKiB)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  child.snapshots = [];
  let pending = '';
  let ready;
  const isReady = new Promise((r) => (ready = r));
  child.stdout.on('data', (d) => {
    pending += d;
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.startsWith('ready')) ready();
      else if (line.startsWith('{')) child.snapshots.push(JSON.parse(line));
    }
  });
  child.once('exit', () => children.delete(child));
  await isReady;
  return child;
}

async function snapshotOf(child, signal) {
  const count = child.snapshots.length;
  child.kill(signal);
  await waitFor('raw server counters', () => child.snapshots.length > count, 30_000);
  return child.snapshots[count];
}

const diff = (after, before) => ({
  reads: (after.opcodes.FUSE_READ ?? 0) - (before?.opcodes.FUSE_READ ?? 0),
  sizes: Object.fromEntries(
    Object.entries(after.readSizes)
      .map(([k, v]) => [Number(k) / 1024 + 'K', v - (before?.readSizes[k] ?? 0)])
      .filter(([, v]) => v > 0),
  ),
  cpuMs: after.cpuMs - (before?.cpuMs ?? 0),
});

async function measureRaw(maxPages, readAheadKiB) {
  const cold = [];
  const warm = [];
  let coldStats;
  let warmStats;
  for (let i = 0; i < runs; i++) {
    const child = await startRaw(maxPages, readAheadKiB);
    const start = await snapshotOf(child, 'SIGUSR2');
    cold.push(ddRead(join(mnt, 'null.raw')));
    const afterCold = await snapshotOf(child, 'SIGUSR2');
    warm.push(ddRead(join(mnt, 'null.raw')));
    const end = await snapshotOf(child, 'SIGINT');
    coldStats = diff(afterCold, start);
    warmStats = diff(end, afterCold);
  }
  const row = { label: `raw null, max_pages ${maxPages}, read_ahead_kb ${readAheadKiB}`, cold, warm };
  row.note = `cold: ${coldStats.reads} READs ${JSON.stringify(coldStats.sizes)} cpu ${coldStats.cpuMs} ms; warm: ${warmStats.reads} READs`;
  return row;
}

/** The bdi (`/sys/class/bdi/MAJ:MIN`) of the filesystem mounted at `dir`. */
function bdiOf(dir) {
  const { dev } = statSync(dir);
  return `/sys/class/bdi/${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`;
}

/** The fuse-native null file; `readAheadKiB` set through sysfs after mounting (the kernel default: 128). */
async function measureNativeNull(readAheadKiB) {
  const cold = [];
  const warm = [];
  for (let i = 0; i < runs; i++) {
    const child = startBackground('node', [join(lib, 'fuse-bench-util.mjs'), 'null-mount', mnt, String(sizeMiB * MiB)]);
    children.add(child);
    await waitFor('fuse-native null mount', () => isMounted(mnt));
    if (readAheadKiB) writeFileSync(`${bdiOf(mnt)}/read_ahead_kb`, String(readAheadKiB));
    cold.push(ddRead(join(mnt, 'null.raw')));
    warm.push(ddRead(join(mnt, 'null.raw')));
    child.kill('SIGINT');
    await waitFor('unmount', () => !isMounted(mnt), 30_000);
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    children.delete(child);
  }
  const label = `fuse-native null (libfuse 2.9), read_ahead_kb ${readAheadKiB ?? '128 (default)'}`;
  return { label, cold, warm, note: '128K READs (libfuse 2.9 cap)' };
}

/**
 * Warm reads of the same bytes from tmpfs with 4 KiB pages and with huge pages: the page-cache copy
 * rate by folio size, no FUSE (cold is meaningless on tmpfs and left out).
 */
function measureTmpfs(huge) {
  const dir = join(work, 'tmpfs');
  mkdirSync(dir, { recursive: true });
  run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB + 64}m,huge=${huge}`, 'cairn-bench', dir]);
  try {
    const file = join(dir, 'copy.img');
    run('cp', [image, file]);
    const warm = [];
    for (let i = 0; i < runs; i++) warm.push(ddRead(file));
    return { label: `tmpfs copy, huge=${huge}`, cold: [], warm, note: 'page cache only (no FUSE)' };
  } finally {
    run('umount', [dir]);
  }
}

try {
  if (!existsSync(image) || statSync(image).size !== sizeMiB * MiB) await makeMixedImage(image, sizeMiB * MiB);
  console.log(`file: ${sizeMiB} MiB, ${runs} runs each, dd bs=1M, medians in MiB/s`);
  const rows = [];
  const plain = { label: 'plain file (ext4)', cold: [], warm: [], note: '' };
  for (let i = 0; i < runs; i++) {
    dropFileCache([image]);
    plain.cold.push(ddRead(image));
    plain.warm.push(ddRead(image));
  }
  rows.push(plain);
  rows.push(await measureNativeNull());
  rows.push(await measureNativeNull(1024));
  rows.push(measureTmpfs('never'), measureTmpfs('always'));
  for (const [maxPages, readAheadKiB] of configs) rows.push(await measureRaw(maxPages, readAheadKiB));

  const list = (values) => values.map((v) => v.toFixed(0)).join(' ');
  const med = (values) => (values.length ? median(values).toFixed(0) : '-');
  console.log('\n| reader | cold | warm | cold runs | warm runs | requests |\n|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.label} | ${med(r.cold)} | ${med(r.warm)} | ${list(r.cold)} | ${list(r.warm)} | ${r.note} |`);
} finally {
  for (const child of children) child.kill('SIGKILL');
  if (isMounted(mnt)) run('umount', ['-l', mnt]);
  if (!keptWork) rmSync(work, { recursive: true, force: true });
}
