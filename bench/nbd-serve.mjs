// NBD serve benchmark (issue 3): one 2 GiB image shaped like a used VM disk, served three ways in one
// run — Cairn (`cairn serve` from a repository), qemu-nbd on the raw file, qemu-nbd on a
// zstd-compressed qcow2 of it — and read by the same clients: `nbdcopy URI null:` with one and with
// four connections, and 4 KiB random reads (fio's nbd engine). Prints medians, ratios and peak RSS.
// Run after `npm run build`:  node bench/nbd-serve.mjs   (env: SIZE=2G RUNS=3 CACHE_MIB=256 FIO_SECONDS=10 CHUNK=1MiB KEEP=1)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeServeImage } from './lib/nbd-serve-image.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const cairn = path.join(here, '..', 'bin', 'cairn');
const runner = path.join(here, 'lib', 'nbd-serve-runner.mjs');
const units = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };
const sizeText = process.env.SIZE ?? '2G';
const size = Number.parseInt(sizeText, 10) * (units[sizeText.slice(-1).toUpperCase()] ?? 1);
const runs = Number(process.env.RUNS ?? 3);
const cacheMib = Number(process.env.CACHE_MIB ?? 256);
const fioSeconds = Number(process.env.FIO_SECONDS ?? 10);
const chunk = process.env.CHUNK ?? '1MiB';
const MiB = 2 ** 20;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sh = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * MiB, ...opts }).toString();

function timed(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Ready once the socket accepts a connection (Cairn has no default export, so no NBD-level probe). */
async function waitForSocket(file, child, deadlineMs = 60_000) {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`server exited early (${child.exitCode})`);
    const ok = await new Promise((resolve) => {
      const s = net.createConnection(file);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`socket ${file} not ready`);
}

function rssMib(pid, field = 'VmHWM') {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)[1]) / 1024;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

function servesCli() {
  try {
    sh('node', [cairn, 'serve', '--help']);
    return true;
  } catch {
    return false;
  }
}

function nbdcopy(uri, connections) {
  return median(Array.from({ length: runs }, () => timed(() => sh('nbdcopy', [`--connections=${connections}`, uri, 'null:']))));
}

function fioRandRead(uri) {
  const iops = [];
  for (let i = 0; i < runs; i++) {
    const out = sh('fio', [
      '--name=randread',
      '--ioengine=nbd',
      `--uri=${uri}`,
      '--rw=randread',
      '--bs=4k',
      '--iodepth=32',
      `--runtime=${fioSeconds}`,
      '--time_based',
      '--output-format=json',
    ]);
    iops.push(JSON.parse(out.slice(out.indexOf('{'))).jobs[0].read.iops);
  }
  return median(iops);
}

async function measure(name, child, socket, exportName) {
  await waitForSocket(socket, child);
  const idleRss = rssMib(child.pid, 'VmRSS');
  const uri = `nbd+unix:///${exportName}?socket=${socket}`;
  sh('nbdcopy', [uri, 'null:']); // warm-up: page cache, JIT, indexes
  const result = { name, seq1: nbdcopy(uri, 1), seq4: nbdcopy(uri, 4), iops: fioRandRead(uri), rssMib: rssMib(child.pid), idleRss };
  await stop(child);
  console.log(
    `${name.padEnd(22)} nbdcopy C1 ${result.seq1.toFixed(2)} s (${(size / MiB / result.seq1).toFixed(0)} MiB/s)  ` +
      `C4 ${result.seq4.toFixed(2)} s (${(size / MiB / result.seq4).toFixed(0)} MiB/s)  4K randread ${result.iops.toFixed(0)} IOPS  ` +
      `peak RSS ${result.rssMib.toFixed(0)} MiB`,
  );
  return result;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-serve-'));
try {
  const raw = path.join(dir, 'disk.raw');
  const qcow2 = path.join(dir, 'disk.qcow2');
  const repo = path.join(dir, 'repo');
  console.log(`image: ${sizeText}, ${JSON.stringify(makeServeImage(raw, size))} MiB regions; runs=${runs}, cache=${cacheMib} MiB`);
  const convert = timed(() => sh('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', '-c', '-o', 'compression_type=zstd', raw, qcow2]));
  console.log(`qcow2 (zstd): ${(fs.statSync(qcow2).size / MiB).toFixed(0)} MiB on disk, made in ${convert.toFixed(1)} s`);
  sh('node', [cairn, 'init', '--repo', repo, '--chunk-size', chunk]);
  const backup = timed(() =>
    sh('node', [cairn, 'backup', '--repo', repo, '--vm', 'bench', '--disk', `sda=${raw}`], {
      env: { ...process.env, CAIRN_LOG_LEVEL: 'warn' },
    }),
  );
  console.log(
    `cairn repository (${chunk} chunks): ${sh('du', ['-sm', repo]).split('\t')[0]} MiB on disk, backup in ${backup.toFixed(1)} s`,
  );
  sh('sync', []);
  // The ceiling of any server on this store: decoding every chunk (read, zstd, SHA-256 check) on all
  // cores with no network at all. `cairn verify` does exactly that, so its rate in disk bytes bounds
  // what `cairn serve` can deliver on this machine.
  sh('node', [cairn, 'verify', '--repo', repo, 'cairn://bench/latest']); // page cache warm, like the servers
  const verifyTimes = [];
  for (let i = 0; i < runs; i++) verifyTimes.push(timed(() => sh('node', [cairn, 'verify', '--repo', repo, 'cairn://bench/latest'])));
  const decodeCeiling = size / MiB / median(verifyTimes);
  console.log(`decode ceiling (cairn verify of the point, all cores, no network): ${decodeCeiling.toFixed(0)} MiB/s of disk`);

  const results = [];
  const cairnSock = path.join(dir, 'cairn.sock');
  const cairnEntry = servesCli() ? cairn : runner;
  results.push(
    await measure(
      'cairn serve',
      spawn(
        'node',
        [cairnEntry, 'serve', '--repo', repo, '--nbd', `unix:${cairnSock}`, '--cache-mib', String(cacheMib), '--log-level', 'warn'],
        { stdio: 'inherit' },
      ),
      cairnSock,
      'bench/latest/sda',
    ),
  );
  const rawSock = path.join(dir, 'raw.sock');
  results.push(
    await measure(
      'qemu-nbd raw',
      spawn('qemu-nbd', ['-r', '-t', '-e', '16', '-f', 'raw', '-x', 'disk', '-k', rawSock, raw], { stdio: 'inherit' }),
      rawSock,
      'disk',
    ),
  );
  const qSock = path.join(dir, 'qcow2.sock');
  results.push(
    await measure(
      'qemu-nbd qcow2 zstd',
      spawn('qemu-nbd', ['-r', '-t', '-e', '16', '-f', 'qcow2', '-x', 'disk', '-k', qSock, qcow2], { stdio: 'inherit' }),
      qSock,
      'disk',
    ),
  );

  const [c, r, q] = results;
  const ratio = (a, b) => (b / a).toFixed(2);
  console.log('\nthroughput of Cairn relative to the peer (>1 = Cairn faster):');
  console.log(
    `  vs qemu-nbd raw:         C1 ${ratio(c.seq1, r.seq1)}x  C4 ${ratio(c.seq4, r.seq4)}x  4K IOPS ${(c.iops / r.iops).toFixed(2)}x   (target seq >= 0.8x)`,
  );
  console.log(
    `  vs qemu-nbd qcow2 zstd:  C1 ${ratio(c.seq1, q.seq1)}x  C4 ${ratio(c.seq4, q.seq4)}x  4K IOPS ${(c.iops / q.iops).toFixed(2)}x   (target seq >= 2x)`,
  );
  const rawRate = size / MiB / Math.min(r.seq1, r.seq4);
  console.log(
    `  decode ceiling ${decodeCeiling.toFixed(0)} MiB/s = ${(decodeCeiling / rawRate).toFixed(2)}x qemu-nbd raw's best (${rawRate.toFixed(0)} MiB/s): ` +
      `no server on this store can beat it while every chunk read is decompressed and SHA-256 checked`,
  );
  const growth = c.rssMib - c.idleRss;
  console.log(
    `  Cairn peak RSS ${c.rssMib.toFixed(0)} MiB = ${c.idleRss.toFixed(0)} MiB idle process + ${growth.toFixed(0)} MiB while serving ` +
      `(chunk cache bound ${cacheMib} MiB, so ${Math.max(0, growth - cacheMib).toFixed(0)} MiB beyond the cache)`,
  );
} finally {
  if (!process.env.KEEP) fs.rmSync(dir, { recursive: true, force: true });
  else console.log(`kept ${dir}`);
}
