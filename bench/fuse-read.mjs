// Sequential read of a DISK.raw through `cairn mount` (dd bs=1M, cold and warm), side by side with
// reading the source file itself and with `restic mount` of the same image. Needs root (FUSE),
// restic, and `npm run build` first. Usage: node bench/fuse-read.mjs [sizeMiB=2048] [runs=3]
// Targets (issue 5): cairn ≥ 0.5× the plain file, ≥ 3× restic mount.
// Env: FUSE_BENCH_WORK=DIR keeps the image and both repositories in DIR and reuses them on the next
// run (for iterating on the mount); FUSE_BENCH_ONLY=plain,cairn,cat,null,restic runs only those
// readers (cat: `cairn cat` to /dev/null, the decode ceiling without FUSE; null: a fuse-native file
// answered from a static buffer, the ceiling of the FUSE path itself).
import { existsSync, mkdtempSync, rmSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiB, ddRead, dropFileCache, isMounted, makeMixedImage, median, run, startBackground, waitFor } from './lib/fuse-bench-util.mjs';

const sizeMiB = Number(process.argv[2] ?? 2048);
const runs = Number(process.argv[3] ?? 3);
const cairn = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'cairn');
const keptWork = process.env.FUSE_BENCH_WORK;
const only = new Set((process.env.FUSE_BENCH_ONLY ?? 'plain,cairn,cat,null,restic').split(','));
if (keptWork) mkdirSync(keptWork, { recursive: true });
const work = keptWork ?? mkdtempSync(join(tmpdir(), 'cairn-bench-fuse-'));
const reuse = keptWork !== undefined && existsSync(join(work, 'ready'));
const image = join(work, 'disk.img');
const resticEnv = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: join(work, 'restic-cache') };
const children = [];
// Extra node flags for the cairn mount process (e.g. FUSE_BENCH_NODE_FLAGS=--cpu-prof).
const nodeFlags = (process.env.FUSE_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);

async function mounted(cmd, args, env, dir) {
  const child = startBackground(cmd, args, env);
  children.push(child);
  await waitFor(`${cmd} mount at ${dir}`, () => isMounted(dir));
  return child;
}

async function unmount(child, dir) {
  child.kill('SIGINT');
  await waitFor(`unmount of ${dir}`, () => !isMounted(dir), 30_000).catch(() => run('fusermount', ['-u', '-z', dir]));
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
}

/** Cold: fresh mount process, backing files dropped from the page cache. Warm: read again in it. */
async function measureMount(label, startMount, fileIn, backingDirs, dir) {
  const cold = [];
  const warm = [];
  for (let i = 0; i < runs; i++) {
    dropFileCache(backingDirs);
    const child = await startMount();
    const file = await fileIn();
    cold.push(ddRead(file));
    warm.push(ddRead(file));
    await unmount(child, dir);
  }
  return result(label, cold, warm);
}

function result(label, coldRuns, warmRuns) {
  return { label, cold: median(coldRuns), warm: median(warmRuns), coldRuns, warmRuns };
}

try {
  console.log(`image: ${sizeMiB} MiB (60% random, 20% text, 20% zeros), ${runs} runs each, medians in MiB/s`);
  const repo = join(work, 'cairn-repo');
  const resticRepo = join(work, 'restic-repo');
  if (!reuse) {
    await makeMixedImage(image, sizeMiB * MiB);
    run('node', [cairn, 'init', '--repo', repo]);
    let t = Date.now();
    run('node', [cairn, 'backup', '--repo', repo, '--vm', 'bench', '--disk', `sda=${image}`]);
    console.log(`cairn backup: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    run('restic', ['-r', resticRepo, 'init'], resticEnv);
    t = Date.now();
    run('restic', ['-r', resticRepo, 'backup', image], resticEnv);
    console.log(`restic backup: ${((Date.now() - t) / 1000).toFixed(1)} s`);
    if (keptWork) run('touch', [join(work, 'ready')]);
  }

  const rows = [];
  if (only.has('plain')) {
    const cold = [];
    const warm = [];
    for (let i = 0; i < runs; i++) {
      dropFileCache([image]);
      cold.push(ddRead(image));
      warm.push(ddRead(image));
    }
    rows.push(result('plain file', cold, warm));
  }

  if (only.has('cairn')) {
    const cairnDir = join(work, 'cairn-mnt');
    mkdirSync(cairnDir, { recursive: true });
    rows.push(
      await measureMount(
        'cairn mount',
        () => mounted('node', [...nodeFlags, cairn, 'mount', cairnDir, '--repo', repo], { CAIRN_LOG_LEVEL: 'warn' }, cairnDir),
        async () => join(cairnDir, 'bench', 'latest', 'sda.raw'),
        [repo],
        cairnDir,
      ),
    );
  }

  if (only.has('cat')) {
    // `cairn cat` to /dev/null: reading, decompressing and SHA-256 checking every chunk with no FUSE
    // in the way (a fresh process each time; "warm" = chunk files in the page cache, still decoded).
    const catRead = () => {
      const started = process.hrtime.bigint();
      run('sh', ['-c', `node ${cairn} cat cairn://bench/latest/sda --repo ${repo} > /dev/null`]);
      return (sizeMiB * MiB) / MiB / (Number(process.hrtime.bigint() - started) / 1e9);
    };
    const cold = [];
    const warm = [];
    for (let i = 0; i < runs; i++) {
      dropFileCache([repo]);
      cold.push(catRead());
      warm.push(catRead());
    }
    rows.push(result('cairn cat (decode, no FUSE)', cold, warm));
  }

  if (only.has('null')) {
    // The same reads from a fuse-native file that costs nothing to produce: the FUSE path's ceiling.
    const nullDir = join(work, 'null-mnt');
    mkdirSync(nullDir, { recursive: true });
    const util = join(dirname(fileURLToPath(import.meta.url)), 'lib', 'fuse-bench-util.mjs');
    rows.push(
      await measureMount(
        'null fuse-native file',
        () => mounted('node', [util, 'null-mount', nullDir, String(sizeMiB * MiB)], {}, nullDir),
        async () => join(nullDir, 'null.raw'),
        [],
        nullDir,
      ),
    );
  }

  if (only.has('restic')) {
    const resticDir = join(work, 'restic-mnt');
    mkdirSync(resticDir, { recursive: true });
    rows.push(
      await measureMount(
        'restic mount',
        () => mounted('restic', ['-r', resticRepo, 'mount', resticDir], resticEnv, resticDir),
        async () => {
          const base = join(resticDir, 'snapshots', 'latest');
          await waitFor('restic snapshot', () => readdirSync(resticDir).includes('snapshots'));
          return join(base, image);
        },
        [resticRepo, resticEnv.RESTIC_CACHE_DIR],
        resticDir,
      ),
    );
  }

  console.log('\n| reader | cold MiB/s | warm MiB/s | cold runs | warm runs |\n|---|---|---|---|---|');
  const list = (values) => values.map((v) => v.toFixed(0)).join(' ');
  for (const r of rows)
    console.log(`| ${r.label} | ${r.cold.toFixed(0)} | ${r.warm.toFixed(0)} | ${list(r.coldRuns)} | ${list(r.warmRuns)} |`);
  const byLabel = (label) => rows.find((r) => r.label === label);
  const ratio = (a, b) => (a / b).toFixed(2);
  const [plain, cairnResult, resticResult] = ['plain file', 'cairn mount', 'restic mount'].map(byLabel);
  if (cairnResult && plain) {
    console.log(
      `\ncairn / plain file: cold ${ratio(cairnResult.cold, plain.cold)}x, warm ${ratio(cairnResult.warm, plain.warm)}x (target ≥ 0.5x)`,
    );
  }
  const catResult = byLabel('cairn cat (decode, no FUSE)');
  if (catResult && plain) {
    console.log(
      `cairn cat / plain file (the decode ceiling on these cores): cold ${ratio(catResult.cold, plain.cold)}x, warm ${ratio(catResult.warm, plain.warm)}x`,
    );
  }
  const nullResult = byLabel('null fuse-native file');
  if (nullResult && plain) {
    console.log(
      `null fuse-native file / plain file (the FUSE path's ceiling): cold ${ratio(nullResult.cold, plain.cold)}x, warm ${ratio(nullResult.warm, plain.warm)}x`,
    );
  }
  if (cairnResult && resticResult) {
    console.log(
      `cairn / restic mount: cold ${ratio(cairnResult.cold, resticResult.cold)}x, warm ${ratio(cairnResult.warm, resticResult.warm)}x (target ≥ 3x)`,
    );
  }
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of ['cairn-mnt', 'null-mnt', 'restic-mnt']) {
    const path = join(work, dir);
    try {
      if (isMounted(path)) run('fusermount', ['-u', '-z', path]);
    } catch {}
  }
  if (!keptWork) rmSync(work, { recursive: true, force: true });
}
