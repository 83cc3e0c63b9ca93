// Sequential read of a DISK.raw through `cairn mount` (dd bs=1M, cold and warm), side by side with
// reading the source file itself and with `restic mount` of the same image. Needs root (FUSE),
// restic, and `npm run build` first. Usage: node bench/fuse-read.mjs [sizeMiB=2048] [runs=3]
// Targets (issue 5): cairn ≥ 0.5× the plain file, ≥ 3× restic mount.
import { mkdtempSync, rmSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiB, ddRead, dropFileCache, isMounted, makeMixedImage, median, run, startBackground, waitFor } from './lib/fuse-bench-util.mjs';

const sizeMiB = Number(process.argv[2] ?? 2048);
const runs = Number(process.argv[3] ?? 3);
const cairn = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'cairn');
const work = mkdtempSync(join(tmpdir(), 'cairn-bench-fuse-'));
const image = join(work, 'disk.img');
const resticEnv = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: join(work, 'restic-cache') };
const children = [];

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
  return { label, cold: median(cold), warm: median(warm) };
}

try {
  console.log(`image: ${sizeMiB} MiB (60% random, 20% text, 20% zeros), ${runs} runs each, medians in MiB/s`);
  await makeMixedImage(image, sizeMiB * MiB);

  const repo = join(work, 'cairn-repo');
  run('node', [cairn, 'init', '--repo', repo]);
  let t = Date.now();
  run('node', [cairn, 'backup', '--repo', repo, '--vm', 'bench', '--disk', `sda=${image}`]);
  console.log(`cairn backup: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const resticRepo = join(work, 'restic-repo');
  run('restic', ['-r', resticRepo, 'init'], resticEnv);
  t = Date.now();
  run('restic', ['-r', resticRepo, 'backup', image], resticEnv);
  console.log(`restic backup: ${((Date.now() - t) / 1000).toFixed(1)} s`);

  const plainCold = [];
  const plainWarm = [];
  for (let i = 0; i < runs; i++) {
    dropFileCache([image]);
    plainCold.push(ddRead(image));
    plainWarm.push(ddRead(image));
  }
  const plain = { label: 'plain file', cold: median(plainCold), warm: median(plainWarm) };

  const cairnDir = join(work, 'cairn-mnt');
  mkdirSync(cairnDir);
  const cairnResult = await measureMount(
    'cairn mount',
    () => mounted('node', [cairn, 'mount', cairnDir, '--repo', repo], { CAIRN_LOG_LEVEL: 'warn' }, cairnDir),
    async () => join(cairnDir, 'bench', 'latest', 'sda.raw'),
    [repo],
    cairnDir,
  );

  const resticDir = join(work, 'restic-mnt');
  mkdirSync(resticDir);
  const resticResult = await measureMount(
    'restic mount',
    () => mounted('restic', ['-r', resticRepo, 'mount', resticDir], resticEnv, resticDir),
    async () => {
      const base = join(resticDir, 'snapshots', 'latest');
      await waitFor('restic snapshot', () => readdirSync(resticDir).includes('snapshots'));
      return join(base, image);
    },
    [resticRepo, resticEnv.RESTIC_CACHE_DIR],
    resticDir,
  );

  const rows = [plain, cairnResult, resticResult];
  console.log('\n| reader | cold MiB/s | warm MiB/s |\n|---|---|---|');
  for (const r of rows) console.log(`| ${r.label} | ${r.cold.toFixed(0)} | ${r.warm.toFixed(0)} |`);
  const ratio = (a, b) => (a / b).toFixed(2);
  console.log(
    `\ncairn / plain file: cold ${ratio(cairnResult.cold, plain.cold)}x, warm ${ratio(cairnResult.warm, plain.warm)}x (target ≥ 0.5x)`,
  );
  console.log(
    `cairn / restic mount: cold ${ratio(cairnResult.cold, resticResult.cold)}x, warm ${ratio(cairnResult.warm, resticResult.warm)}x (target ≥ 3x)`,
  );
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of ['cairn-mnt', 'restic-mnt']) {
    const path = join(work, dir);
    try {
      if (isMounted(path)) run('fusermount', ['-u', '-z', path]);
    } catch {}
  }
  rmSync(work, { recursive: true, force: true });
}
