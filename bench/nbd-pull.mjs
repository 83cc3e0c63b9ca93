// NBD pull benchmark (issue 4): a data-filled export (default 4 GiB) pulled in full by `cairn backup`
// and copied by nbdcopy to a local file (the speed of the pipe), then 5 % of it dirtied in 64 KiB
// extents spread over the disk and pulled incrementally with the dirty bitmap.
// Run after `npm run build`:  node bench/nbd-pull.mjs   (env: SIZE=4G RUNS=3 DIRTY=5 PLUGIN=pattern CONNECTIONS=4 CHUNK=1MiB)
// PLUGIN is an nbdkit plugin whose data fills the disk, or `used-disk` for the serve benchmark's image
// (a quarter never written, text, incompressible data).
// Besides times it prints the CPU seconds of each side (cairn, qemu-nbd): on two cores, their sum
// over two is the least wall time that work can take, whatever the pipelining.
//
// Nothing is deleted until the end: on this machine's journal-less ext4, creating a file scans past
// every inode freed in the last 60 s (ext4 recently_deleted()), so a repository removed just before a
// timed run made that run's chunk creation cost up to 0.7 s more CPU per GiB, varying run to run.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dirtyImage, makeDataImage, serveImage } from './lib/pull-fixture.mjs';
import { NbdSource } from '../dist/ingest/nbd-source.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cairn = path.join(here, '..', 'bin', 'cairn');
const units = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };
const sizeText = process.env.SIZE ?? '4G';
const size = Number.parseInt(sizeText, 10) * (units[sizeText.slice(-1).toUpperCase()] ?? 1);
const runs = Number(process.env.RUNS ?? 3);
const dirtyPercent = Number(process.env.DIRTY ?? 5);
const plugin = process.env.PLUGIN ?? 'pattern';
const connections = process.env.CONNECTIONS ?? '4';
const chunk = process.env.CHUNK ?? '1MiB';
const MiB = 2 ** 20;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (s) => `${s.toFixed(2)} s`;
const rate = (bytes, s) => `${(bytes / MiB / s).toFixed(0)} MiB/s`;

/** CPU seconds (user + system) of this process's waited-for children so far (/proc/self/stat). */
function childrenCpuSeconds() {
  const fields = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(fields[13]) + Number(fields[14])) / ticksPerSecond;
}
/** CPU seconds a running process has used so far. */
function processCpuSeconds(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}
const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** Times a synchronous child run, after a sync (no tool pays for another's write-back), with CPU use. */
function timed(fn, serverPid) {
  execFileSync('sync');
  const cpu0 = childrenCpuSeconds();
  const server0 = processCpuSeconds(serverPid);
  const t0 = process.hrtime.bigint();
  const out = fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, cpu: childrenCpuSeconds() - cpu0, serverCpu: processCpuSeconds(serverPid) - server0, out };
}

/** The NBD client alone: the full extent stream drained, nothing stored (separates pull from store). */
async function drainSource(uri, serverPid) {
  const server0 = processCpuSeconds(serverPid);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const source = await NbdSource.open({ uri, connections: Number(connections) });
  let bytes = 0;
  for await (const e of source.extents({ chunkSize: MiB, hasBase: false })) bytes += e.data ? e.data.length : 0;
  await source.close();
  const cpu = process.cpuUsage(cpu0);
  return {
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    cpu: (cpu.user + cpu.system) / 1e6,
    serverCpu: processCpuSeconds(serverPid) - server0,
    bytes,
  };
}

function cairnBackup(repo, uri, extra = []) {
  const out = execFileSync(
    'node',
    [
      cairn,
      'backup',
      '--repo',
      repo,
      '--vm',
      'bench',
      '--disk',
      `vda=${uri}`,
      ...(uri.startsWith('nbd') ? ['--connections', connections] : []),
      '--json',
      ...extra,
    ],
    {
      env: { ...process.env, CAIRN_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return JSON.parse(out.toString());
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-pull-'));
try {
  console.log(
    `NBD pull benchmark: ${sizeText} export (${plugin === 'used-disk' ? 'a used-disk image' : `nbdkit ${plugin} data`} in qcow2, served by qemu-nbd), chunk ${chunk}, ${connections} connections, ${runs} runs, median`,
  );
  const image = await makeDataImage(dir, size, plugin);

  // Full pulls: nbdcopy to a local file versus cairn backup into a fresh repository each run.
  let server = await serveImage(dir, image);
  const copyRuns = [];
  const clientRuns = [];
  const fullRuns = [];
  const localRuns = [];
  let baseRepo;
  let basePoint;
  for (let i = 0; i < runs; i++) {
    const target = path.join(dir, `nbdcopy${i}.raw`);
    copyRuns.push(timed(() => execFileSync('nbdcopy', [server.uri, target]), server.pid));
    execFileSync('sync');
    clientRuns.push(await drainSource(server.uri, server.pid));

    const repo = path.join(dir, `repo${i}`);
    execFileSync('node', [cairn, 'init', '--repo', repo, '--chunk-size', chunk], { stdio: 'ignore' });
    const run = timed(() => cairnBackup(repo, server.uri), server.pid);
    fullRuns.push(run);
    // The ingest ceiling: the same bytes backed up from the local copy (page cache, no NBD at all).
    const localRepo = path.join(dir, `local${i}`);
    execFileSync('node', [cairn, 'init', '--repo', localRepo, '--chunk-size', chunk], { stdio: 'ignore' });
    localRuns.push(timed(() => cairnBackup(localRepo, target), server.pid));
    // Only the copy's data goes now (one inode; it frees disk space); repositories stay to the end.
    fs.rmSync(target, { force: true });
    baseRepo = repo;
    basePoint = run.out.point;
  }
  await server.stop();

  // Incremental pulls: 5 % dirty in 64 KiB extents, read through qemu:dirty-bitmap.
  const { extents, dirtyBytes } = dirtyImage(image, size, dirtyPercent, 'b0');
  server = await serveImage(dir, image, 'b0');
  const incRuns = [];
  let bytesRead = 0;
  for (let i = 0; i < runs; i++) {
    // A fresh copy of the base repository each run: otherwise later runs find the new chunks stored.
    const repo = path.join(dir, `inc${i}`);
    fs.cpSync(baseRepo, repo, { recursive: true });
    const run = timed(() => cairnBackup(repo, server.uri, ['--bitmap', 'b0', '--base', basePoint]), server.pid);
    incRuns.push(run);
    bytesRead = run.out.disks[0].bytesRead;
  }
  await server.stop();

  const copyTimes = copyRuns.map((r) => r.seconds);
  const clientTimes = clientRuns.map((r) => r.seconds);
  const fullTimes = fullRuns.map((r) => r.seconds);
  const incTimes = incRuns.map((r) => r.seconds);
  const copy = median(copyTimes);
  const full = median(fullTimes);
  const inc = median(incTimes);
  const client = median(clientTimes);
  console.log(`nbdcopy to file          ${fmt(copy)}  ${rate(size, copy)}   (runs: ${copyTimes.map(fmt).join(', ')})`);
  console.log(`cairn NBD client alone   ${fmt(client)}  ${rate(size, client)}   (runs: ${clientTimes.map(fmt).join(', ')})`);
  console.log(`cairn full pull          ${fmt(full)}  ${rate(size, full)}   (runs: ${fullTimes.map(fmt).join(', ')})`);
  const local = median(localRuns.map((r) => r.seconds));
  console.log(`cairn backup, local copy ${fmt(local)}  ${rate(size, local)}   (the same bytes from a file: no NBD)`);
  console.log(
    `cairn incremental pull   ${fmt(inc)}  ${(dirtyBytes / MiB).toFixed(0)} MiB dirty in ${extents} extents, read ${(bytesRead / MiB).toFixed(0)} MiB   (runs: ${incTimes.map(fmt).join(', ')})`,
  );
  const cpuLine = (label, rs) =>
    console.log(
      `  CPU ${label.padEnd(20)} client ${median(rs.map((r) => r.cpu)).toFixed(2)} s + qemu-nbd ${median(rs.map((r) => r.serverCpu)).toFixed(2)} s` +
        ` (median; both over 2 cores >= ${median(rs.map((r) => (r.cpu + r.serverCpu) / 2)).toFixed(2)} s)`,
    );
  cpuLine('nbdcopy', copyRuns);
  cpuLine('cairn client alone', clientRuns);
  cpuLine('cairn full pull', fullRuns);
  cpuLine('cairn local copy', localRuns);
  cpuLine('cairn incremental', incRuns);
  console.log(
    `full / nbdcopy throughput: ${(copy / full).toFixed(2)}x (target >= 0.8x); client alone / nbdcopy: ${(copy / client).toFixed(2)}x`,
  );
  console.log(
    `ingest ceiling: backing up the same bytes from a local file runs at ${(copy / local).toFixed(2)}x nbdcopy; no NBD client can pull faster than the store takes them`,
  );
  console.log(`incremental speed-up over full: ${(full / inc).toFixed(1)}x (target >= 10x); ${rate(dirtyBytes, inc)} of dirty data`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
