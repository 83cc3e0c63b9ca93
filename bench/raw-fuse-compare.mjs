// EXPERIMENT (issue 5): would a raw /dev/fuse transport (bench/lib/raw-fuse-null.mjs) raise the FUSE
// ceiling of `cairn mount`? Reads one SIZE file with dd bs=1M, cold and warm, side by side in one run:
// the plain file on disk, the fuse-native null file (libfuse 2.9, 128 KiB requests) and the raw null
// file with several max_pages / bdi read_ahead_kb settings, and prints medians plus the READ request
// sizes the raw server saw. Needs root. Run under the shared lock:
//   flock /work/bench.lock node bench/raw-fuse-compare.mjs [sizeMiB=2048] [runs=3]
// Env: RAW_FUSE_CONFIGS="32/128,256/128,256/1024" (maxPages/readAheadKiB), RAW_FUSE_WORK=DIR keeps the
// plain file between runs.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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

async function measureNativeNull() {
  const cold = [];
  const warm = [];
  for (let i = 0; i < runs; i++) {
    const child = startBackground('node', [join(lib, 'fuse-bench-util.mjs'), 'null-mount', mnt, String(sizeMiB * MiB)]);
    children.add(child);
    await waitFor('fuse-native null mount', () => isMounted(mnt));
    cold.push(ddRead(join(mnt, 'null.raw')));
    warm.push(ddRead(join(mnt, 'null.raw')));
    child.kill('SIGINT');
    await waitFor('unmount', () => !isMounted(mnt), 30_000);
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    children.delete(child);
  }
  return { label: 'fuse-native null (libfuse 2.9)', cold, warm, note: 'read_ahead_kb 128 (default), 128K READs' };
}

try {
  if (!existsSync(image)) await makeMixedImage(image, sizeMiB * MiB);
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
  for (const [maxPages, readAheadKiB] of configs) rows.push(await measureRaw(maxPages, readAheadKiB));

  const list = (values) => values.map((v) => v.toFixed(0)).join(' ');
  console.log('\n| reader | cold | warm | cold runs | warm runs | requests |\n|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r.label} | ${median(r.cold).toFixed(0)} | ${median(r.warm).toFixed(0)} | ${list(r.cold)} | ${list(r.warm)} | ${r.note} |`,
    );
} finally {
  for (const child of children) child.kill('SIGKILL');
  if (isMounted(mnt)) run('umount', ['-l', mnt]);
  if (!keptWork) rmSync(work, { recursive: true, force: true });
}
