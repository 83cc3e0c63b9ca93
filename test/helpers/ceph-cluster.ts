// A throwaway single-node Ceph (one monitor, one memstore OSD, auth none, pool size 1) on loopback,
// in its own temp directory, for the rbd export-diff tests. Started once by the test file that needs
// it; stopped by pid file. Needs Debian's ceph-mon, ceph-osd and ceph-common.
import { execFile, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface CephCluster {
  dir: string;
  conf: string;
  pool: string;
  /** Runs a ceph CLI (rbd, ceph, rados) against this cluster. */
  run(cmd: string, args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`ceph: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function startCephCluster(): Promise<CephCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-ceph-'));
  const conf = join(dir, 'ceph.conf');
  const port = await freePort();
  const fsid = randomUUID();
  for (const sub of ['run', 'log', 'mon/a', 'osd/0']) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(
    conf,
    `[global]
fsid = ${fsid}
mon host = v1:127.0.0.1:${port}
mon initial members = a
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
mon data = ${dir}/mon/$id
osd data = ${dir}/osd/$id
osd objectstore = memstore
memstore device bytes = 1073741824
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd class update on start = false
osd crush update on start = false
mon data avail warn = 1
mon data avail crit = 1
mon warn on insecure global id reclaim allowed = false
mon warn on msgr2 not enabled = false
paxos propose interval = 0.1
rbd default features = 1
`,
  );
  const env = { ...process.env, CEPH_CONF: conf };
  const run = async (cmd: string, args: string[]) => (await execFileAsync(cmd, args, { env, maxBuffer: 64 * 1024 * 1024 })).stdout;
  const cluster: CephCluster = {
    dir,
    conf,
    pool: 'rbd',
    run,
    async stop() {
      const runDir = join(dir, 'run');
      const pids = existsSync(runDir) ? readdirSync(runDir).filter((f) => f.endsWith('.pid')) : [];
      // OSD before monitor, each by its own pid.
      for (const file of pids.sort((a) => (a.startsWith('osd') ? -1 : 1))) {
        const pid = Number(readFileSync(join(runDir, file), 'utf8').trim());
        if (!pid) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    execFileSync('monmaptool', ['--create', '--addv', 'a', `[v1:127.0.0.1:${port}]`, '--fsid', fsid, join(dir, 'monmap')], {
      env,
      stdio: 'pipe',
    });
    execFileSync('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap')], { env, stdio: 'pipe' });
    // Daemons fork and keep their stdio: inherit none, or the call waits for them.
    execFileSync('ceph-mon', ['-i', 'a'], { env, stdio: 'ignore' });
    // The monitor answers commands a moment after it forks.
    let osd = '';
    await waitFor(async () => {
      osd = (await run('ceph', ['--connect-timeout', '5', 'osd', 'create'])).trim();
      return true;
    }, 'the monitor to answer');
    execFileSync('ceph-osd', ['-i', osd, '--mkfs'], { env, stdio: 'pipe' });
    await run('ceph', ['osd', 'crush', 'add', `osd.${osd}`, '1.0', 'host=localhost', 'root=default']);
    execFileSync('ceph-osd', ['-i', osd], { env, stdio: 'ignore' });
    await waitFor(async () => new RegExp(`^osd\\.${osd} up +in`, 'm').test(await run('ceph', ['osd', 'dump'])), 'the OSD to come up');
    await run('ceph', ['osd', 'pool', 'create', cluster.pool, '8']);
    await run('rbd', ['pool', 'init', cluster.pool]);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}
