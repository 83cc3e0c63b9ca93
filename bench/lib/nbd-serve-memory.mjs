// Peak RSS and nbdcopy throughput of `cairn serve` alone, against a repository that already exists
// (quicker than bench/nbd-serve.mjs when iterating on the server's memory). Compare two builds side
// by side by pointing CAIRN at each, in one run, under the shared lock:
//   flock /work/bench.lock node bench/lib/nbd-serve-memory.mjs
// env: REPO (required; a repository with point bench/latest, disk sda, e.g. one kept by
// `KEEP=1 node bench/nbd-serve.mjs`), CAIRN (default bin/cairn), CACHE_MIB (256), CONNS (1,4), RUNS (3)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = process.env.REPO;
if (!repo) throw new Error('set REPO to a repository holding bench/latest/sda');
const cairn = process.env.CAIRN ?? path.join(here, '..', '..', 'bin', 'cairn');
const cacheMib = process.env.CACHE_MIB ?? '256';
const conns = (process.env.CONNS ?? '1,4').split(',');
const runs = Number(process.env.RUNS ?? 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-serve-mem-'));
const sock = path.join(dir, 'cairn.sock');
const child = spawn('node', [cairn, 'serve', '--repo', repo, '--nbd', `unix:${sock}`, '--cache-mib', cacheMib, '--log-level', 'warn'], {
  stdio: 'inherit',
});
const status = (field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024;
try {
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`cairn serve exited (${child.exitCode})`);
    const ok = await new Promise((resolve) => {
      const s = net.createConnection(sock);
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > until) throw new Error('server not ready');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const uri = `nbd+unix:///bench/latest/sda?socket=${sock}`;
  const size = Number(execFileSync('nbdinfo', ['--size', uri]).toString().trim());
  console.log(`${cairn}: cache ${cacheMib} MiB, idle RSS ${status('VmRSS').toFixed(0)} MiB`);
  for (const c of conns) {
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      execFileSync('nbdcopy', [`--connections=${c}`, uri, 'null:']);
      times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
    console.log(
      `  C${c}: ${times.map((t) => t.toFixed(2)).join(' ')} s, median ${(size / 2 ** 20 / median).toFixed(0)} MiB/s; ` +
        `peak RSS so far ${status('VmHWM').toFixed(0)} MiB`,
    );
  }
} finally {
  child.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
}
