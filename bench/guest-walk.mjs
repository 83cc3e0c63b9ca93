// Single-file restore through the FUSE tree: walking a 50,000-file ext4 tree and reading a 1 GiB file
// through `DISK/p1/` (Cairn's own ext4 reader) side by side with the kernel's ext4 on a loop device
// over the same mount's `DISK/p1.raw`, cold caches; and `cairn versions` of one file over 30 points.
// Needs root (FUSE, loop devices, drop_caches) and `npm run build` first.
// Usage: node bench/guest-walk.mjs [files=50000] [bigMiB=1024] [runs=3]
// Targets (issue 11): walk ≤ 2x the loop mount's time; read ≥ 0.8x; versions over 30 points < 1 s;
// peak RSS of the mount < 256 MiB. Env GUEST_BENCH_WORK=DIR keeps the image and repositories.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiB, isMounted, makeMixedImage, median, run, startBackground, waitFor } from './lib/fuse-bench-util.mjs';

const fileCount = Number(process.argv[2] ?? 50_000);
const bigMiB = Number(process.argv[3] ?? 1024);
const runs = Number(process.argv[4] ?? 3);
const cairn = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'cairn');
const keptWork = process.env.GUEST_BENCH_WORK;
if (keptWork) mkdirSync(keptWork, { recursive: true });
const work = keptWork ?? mkdtempSync(join(tmpdir(), 'cairn-bench-guest-'));
const reuse = keptWork !== undefined && existsSync(join(work, 'ready'));
const repo = join(work, 'repo');
const mnt = join(work, 'mnt');
const loopMnt = join(work, 'loop-mnt');
const children = [];

const seconds = (started) => Number(process.hrtime.bigint() - started) / 1e9;
const dropCaches = () => writeFileSync('/proc/sys/vm/drop_caches', '3\n');

function makeTree(dir) {
  const perDir = 100;
  for (let d = 0; d < Math.ceil(fileCount / perDir); d++) {
    const sub = join(dir, `d${String(d).padStart(4, '0')}`, 'nested');
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < perDir && d * perDir + f < fileCount; f++) {
      writeFileSync(join(sub, `file-${f}.txt`), `file ${d}/${f}\n`.repeat((f * 37) % 200));
    }
  }
}

async function makeDisk() {
  const src = join(work, 'src');
  mkdirSync(src, { recursive: true });
  makeTree(join(src, 'tree'));
  await makeMixedImage(join(src, 'big.bin'), bigMiB * MiB);
  const partSize = bigMiB * MiB + 512 * MiB;
  const part = join(work, 'part.img');
  run('truncate', ['-s', String(partSize), part]);
  run('mkfs.ext4', ['-q', '-F', '-N', String(fileCount + 20_000), '-d', src, part]);
  const disk = join(work, 'disk.img');
  run('truncate', ['-s', String(partSize + 2 * MiB), disk]);
  run('sh', ['-c', `printf 'label: gpt\\nstart=2048, size=${partSize / 512}, type=L\\n' | sfdisk -q ${disk}`]);
  run('dd', [`if=${part}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  rmSync(part);
  rmSync(src, { recursive: true, force: true });
  run('node', [cairn, 'init', '--repo', repo]);
  run('node', [cairn, 'backup', '--repo', repo, '--vm', 'bench', '--disk', `sda=${disk}`]);
  rmSync(disk);
}

async function mountCairn() {
  mkdirSync(mnt, { recursive: true });
  const child = startBackground('node', [cairn, 'mount', '--repo', repo, mnt]);
  children.push(child);
  await waitFor('cairn mount', () => isMounted(mnt));
  return child;
}

function peakRssMiB(child) {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)[1]) / 1024;
}

async function unmountCairn(child) {
  child.kill('SIGINT');
  await waitFor('unmount', () => !isMounted(mnt), 30_000).catch(() => run('fusermount', ['-u', '-z', mnt]));
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
}

/** Runs `work(dir)` on Cairn's own view of p1 and on the kernel's ext4 over a loop device on p1.raw, each cold. */
async function sideBySide(work) {
  const ours = [];
  const kernel = [];
  const rss = [];
  for (let i = 0; i < runs; i++) {
    dropCaches();
    let child = await mountCairn();
    const point = join(mnt, 'bench', 'latest', 'sda');
    ours.push(work(join(point, 'p1')));
    rss.push(peakRssMiB(child));
    await unmountCairn(child);
    dropCaches();
    child = await mountCairn();
    const loop = run('losetup', ['-r', '-f', '--show', join(point, 'p1.raw')]).trim();
    mkdirSync(loopMnt, { recursive: true });
    run('mount', ['-t', 'ext4', '-o', 'ro,noload', loop, loopMnt]);
    try {
      kernel.push(work(loopMnt));
    } finally {
      run('umount', [loopMnt]);
      run('losetup', ['-d', loop]);
      await unmountCairn(child);
    }
  }
  return { ours: median(ours), kernel: median(kernel), oursRuns: ours, kernelRuns: kernel, rss: Math.max(...rss) };
}

function walk(dir) {
  const started = process.hrtime.bigint();
  const out = run('sh', ['-c', `find "${dir}/tree" -type f -printf '%s %m %T@\\n' | wc -l`]).trim();
  if (Number(out) !== fileCount) throw new Error(`walk found ${out} files, expected ${fileCount}`);
  return seconds(started);
}

function readBig(dir) {
  const started = process.hrtime.bigint();
  run('dd', [`if=${join(dir, 'big.bin')}`, 'of=/dev/null', 'bs=1M', 'status=none']);
  return (bigMiB * MiB) / MiB / seconds(started);
}

/** 30 points of a small ext4 disk whose /etc/app.conf changes every fifth point. */
function makeVersionsRepo() {
  const vrepo = join(work, 'versions-repo');
  const src = join(work, 'vsrc');
  mkdirSync(join(src, 'etc'), { recursive: true });
  run('node', [cairn, 'init', '--repo', vrepo]);
  const img = join(work, 'v.img');
  for (let i = 0; i < 30; i++) {
    writeFileSync(join(src, 'etc', 'app.conf'), `version ${Math.floor(i / 5)}\n`);
    writeFileSync(join(src, 'noise.txt'), `point ${i}\n`.repeat(1000));
    run('truncate', ['-s', '0', img]);
    run('truncate', ['-s', String(64 * MiB), img]);
    run('mkfs.ext4', ['-q', '-F', '-d', src, img]);
    run('node', [cairn, 'backup', '--repo', vrepo, '--vm', 'v', '--disk', `vda=${img}`]);
  }
  rmSync(img);
  rmSync(src, { recursive: true, force: true });
  return vrepo;
}

try {
  if (!reuse) {
    console.log(`building: ${fileCount} files + a ${bigMiB} MiB file on ext4 in a GPT partition…`);
    await makeDisk();
    makeVersionsRepo();
    if (keptWork) writeFileSync(join(work, 'ready'), '');
  }
  console.log(`${runs} runs each, cold caches (drop_caches and a fresh mount before every run), medians`);
  const w = await sideBySide(walk);
  console.log(`walk ${fileCount} files (find -type f + stat):`);
  console.log(`  cairn DISK/p1/          ${w.ours.toFixed(2)} s  (runs ${w.oursRuns.map((s) => s.toFixed(2)).join(' ')})`);
  console.log(`  kernel ext4 on p1.raw   ${w.kernel.toFixed(2)} s  (runs ${w.kernelRuns.map((s) => s.toFixed(2)).join(' ')})`);
  console.log(`  ratio cairn / kernel    ${(w.ours / w.kernel).toFixed(2)}x the time   (target <= 2x)`);
  const r = await sideBySide(readBig);
  console.log(`read ${bigMiB} MiB file (dd bs=1M):`);
  console.log(`  cairn DISK/p1/big.bin   ${r.ours.toFixed(0)} MiB/s  (runs ${r.oursRuns.map((s) => s.toFixed(0)).join(' ')})`);
  console.log(`  kernel ext4 on p1.raw   ${r.kernel.toFixed(0)} MiB/s  (runs ${r.kernelRuns.map((s) => s.toFixed(0)).join(' ')})`);
  console.log(`  ratio cairn / kernel    ${(r.ours / r.kernel).toFixed(2)}x   (target >= 0.8x)`);
  console.log(`peak RSS of cairn mount   ${Math.max(w.rss, r.rss).toFixed(0)} MiB   (target < 256 MiB)`);
  const vrepo = join(work, 'versions-repo');
  const times = [];
  let output = '';
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    output = run('node', [cairn, 'versions', '--repo', vrepo, 'cairn://v/*/vda/etc/app.conf']);
    times.push(seconds(started));
  }
  const versions = output.trim().split('\n').length;
  console.log(
    `cairn versions, 30 points: ${median(times).toFixed(2)} s (${versions} versions; runs ${times.map((s) => s.toFixed(2)).join(' ')})   (target < 1 s)`,
  );
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGINT');
  if (!keptWork) {
    await new Promise((r) => setTimeout(r, 500));
    if (isMounted(mnt)) run('fusermount', ['-u', '-z', mnt]);
    rmSync(work, { recursive: true, force: true });
  }
}
