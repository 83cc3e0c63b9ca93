import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CAIRN_BIN, makeTempDir, runCairn, runJson, startCairn, waitFor } from '../helpers/cairn-cli.js';

const MiB = 1024 * 1024;

/**
 * Runs cairn with a standard output whose reader is gone before anything is written, as after
 * `cairn ls | head -1` once head has exited: every write fails with EPIPE.
 */
function runWithClosedStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CAIRN_BIN, ...args], {
      env: { ...process.env, CAIRN_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    const err: Buffer[] = [];
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr: Buffer.concat(err).toString() }));
  });
}

/** Keys of one JSON line as written (JSON.parse would hide a repeated key). */
function keysOf(line: string): string[] {
  return [...line.matchAll(/"([A-Za-z_][A-Za-z0-9_]*)":/g)].map((m) => m[1]!);
}

describe('cairn output: closed pipes, --json shapes and errors, log lines, progress, help', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let repo: string;
  let image: Buffer;
  let point: string;
  const children: ChildProcess[] = [];
  beforeEach(async () => {
    dir = await makeTempDir();
    repo = join(dir.path, 'repo');
    expect((await runCairn(['init', '--repo', repo, '--chunk-size', '64KiB'])).code).toBe(0);
    image = randomBytes(8 * MiB);
    await writeFile(join(dir.path, 'a.raw'), image);
    await writeFile(join(dir.path, 'vm.conf'), 'name=web\n');
    point = (
      await runJson<{ point: string }>([
        'backup',
        '--repo',
        repo,
        '--vm',
        'web',
        '--disk',
        `sda=${join(dir.path, 'a.raw')}`,
        '--config',
        join(dir.path, 'vm.conf'),
      ])
    ).point;
  });
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
    const mnt = join(dir.path, 'mnt');
    if ((await readFile('/proc/self/mounts', 'utf8')).includes(` ${mnt} `)) execFileSync('umount', ['-l', mnt]);
    await dir.cleanup();
  });

  it('every command that writes to stdout stops quietly with exit 0 when its reader is gone', async () => {
    const url = `cairn://web/${point}`;
    const commands = [
      ['ls'],
      ['ls', '--json'],
      ['ls', 'cairn://web'],
      ['ls', url],
      ['stat', `${url}/sda`],
      ['cat', `${url}/sda`],
      ['config', url],
      ['verify'],
      ['verify', '--json'],
      ['monitor'],
      ['gc', '--dry-run'],
      ['prune', '--keep-last', '5', '--dry-run'],
      ['backup', '--vm', 'web', '--disk', `sda=${join(dir.path, 'a.raw')}`, '--json'],
      ['restore', `${url}/sda`, join(dir.path, 'restored.raw')],
      ['--help'],
      ['cat', '--help'],
    ];
    for (const args of commands) {
      const result = await runWithClosedStdout([...args, '--repo', repo]);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
    // The reader may also leave in the middle of a disk, with writes queued.
    const child = startCairn(['cat', '--repo', repo, `${url}/sda`]);
    children.push(child);
    const stderr: Buffer[] = [];
    child.stderr!.on('data', (d: Buffer) => stderr.push(d));
    await new Promise((resolve) => child.stdout!.once('data', resolve));
    child.stdout!.destroy();
    expect(await new Promise((resolve) => child.once('close', resolve))).toBe(0);
    expect(Buffer.concat(stderr).toString()).toBe('');
  });

  it('a closed stdout does not hide the outcome the command reached: verify finding damage still exits 5', async () => {
    const index = await readFile(join(repo, 'vms', 'web', point, 'sda.cidx'));
    const digest = index.subarray(32, 64).toString('hex');
    const chunk = join(repo, 'chunks', digest.slice(0, 2), digest);
    execFileSync('chmod', ['644', chunk]);
    const bytes = await readFile(chunk);
    bytes[bytes.length - 1]! ^= 0xff;
    await writeFile(chunk, bytes);
    const result = await runWithClosedStdout(['verify', '--repo', repo]);
    expect(result).toEqual({ code: 5, stderr: '' });
  });

  it('prints errors under --json as one JSON object on stderr, usage errors included', async () => {
    const cases: [string[], string, number][] = [
      [['ls', 'cairn://nosuch', '--json'], 'ERR_NOT_FOUND', 3],
      [['stat', 'cairn://web/latest/nosuch', '--json'], 'ERR_NOT_FOUND', 3],
      [['gc', '--grace-seconds', '-1', '--json'], 'ERR_INVALID_ARGUMENT', 2],
      [['ls', '--json', '--no-such-option'], 'ERR_INVALID_ARGUMENT', 2],
      [['verify', 'cairn://nosuch', '--json'], 'ERR_NOT_FOUND', 3],
    ];
    for (const [args, code, exitCode] of cases) {
      const result = await runCairn([...args, '--repo', repo]);
      expect(result.code).toBe(exitCode);
      expect(result.stdout.toString()).toBe('');
      const lines = result.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      const parsed = JSON.parse(lines[0]!) as { error: { code: string; message: string; exitCode: number } };
      expect(parsed).toEqual({ error: { code, message: expect.any(String) as string, exitCode } });
    }
    // Without --json the same error is one plain line.
    expect((await runCairn(['ls', 'cairn://nosuch', '--repo', repo])).stderr).toBe("cairn: VM 'nosuch' has no restore points\n");
  });

  it('prints a point, a disk and a VM in one shape in every command', async () => {
    const base = join(dir.path, 'a.raw');
    const second = await runJson<Record<string, unknown>>([
      'backup',
      '--repo',
      repo,
      '--vm',
      'web',
      '--disk',
      `sda=${base}`,
      '--base',
      'latest',
    ]);
    const vms = await runJson<Record<string, unknown>[]>(['ls', '--repo', repo]);
    const points = await runJson<Record<string, unknown>[]>(['ls', '--repo', repo, 'cairn://web']);
    const one = await runJson<Record<string, unknown>>(['ls', '--repo', repo, `cairn://web/${point}`]);
    const stat = await runJson<Record<string, unknown>>(['stat', '--repo', repo, `cairn://web/${point}/sda`]);

    expect(vms).toEqual([{ vm: 'web', url: 'cairn://web', points: 2, latest: second.point }]);
    const pointKeys = ['vm', 'point', 'url', 'created', 'parent', 'source', 'hasConfig', 'disks'].sort();
    for (const p of [...points, one]) expect(Object.keys(p).sort()).toEqual(pointKeys);
    expect(one).toEqual(points[0]);
    expect(one).toMatchObject({ vm: 'web', point, url: `cairn://web/${point}`, parent: null, hasConfig: true });
    expect(points[1]).toMatchObject({ point: second.point, parent: point });
    expect(new Date(one.created as string).toISOString()).toBe(one.created);
    const disk = { vm: 'web', point, disk: 'sda', url: `cairn://web/${point}/sda`, size: 8 * MiB };
    expect(one.disks).toEqual([disk]);
    expect(stat).toMatchObject({ ...disk, created: one.created, parent: null });
    // backup's report: the same names for the point and its disks, parent present.
    expect(second).toMatchObject({ vm: 'web', url: `cairn://web/${second.point}`, parent: point });
    expect((second.disks as Record<string, unknown>[])[0]).toMatchObject({
      ...disk,
      point: second.point,
      url: `cairn://web/${second.point}/sda`,
    });
  });

  it('writes no key twice on a log line', async () => {
    // A first backup with --base latest warns about the VM, on a logger bound to that VM.
    const backup = await runCairn(
      ['backup', '--repo', repo, '--vm', 'fresh', '--disk', `sda=${join(dir.path, 'a.raw')}`, '--base', 'latest'],
      { env: { CAIRN_LOG_LEVEL: 'info' } },
    );
    expect(backup.code).toBe(0);
    const warn = backup.stderr.split('\n').find((line) => line.includes('has no restore point yet'));
    expect(warn).toBeDefined();
    expect(keysOf(warn!).filter((k) => k === 'vm')).toEqual(['vm']);

    // The mount logs its directory on a logger bound to it; a relative DIR is the same directory.
    const mnt = join(dir.path, 'mnt');
    await mkdir(mnt);
    const child = spawn(process.execPath, [CAIRN_BIN, 'mount', '--repo', repo, 'mnt'], {
      cwd: dir.path,
      env: { ...process.env, CAIRN_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const mounted = await waitFor(() => stderr.split('\n').find((line) => line.includes('restore points mounted at')), 'the mount');
    child.kill('SIGTERM');
    expect(await new Promise((resolve) => child.once('close', resolve))).toBe(0);
    expect(keysOf(mounted).filter((k) => k === 'dir')).toEqual(['dir']);
    expect(JSON.parse(mounted)).toMatchObject({ dir: mnt });
    for (const line of stderr.trim().split('\n')) expect(new Set(keysOf(line)).size).toBe(keysOf(line).length);
  });

  it("draws verify's progress with a total and an ETA on a terminal", () => {
    // script(1) gives cairn a terminal for stdout and stderr.
    const command = `${process.execPath} ${CAIRN_BIN} verify --repo ${repo}`;
    const typescript = execFileSync('script', ['-q', '-e', '-c', command, '/dev/null'], {
      env: { ...process.env, CAIRN_LOG_LEVEL: 'warn' },
    })
      .toString()
      .replace(/\r/g, '\n');
    expect(typescript).toMatch(/verify \[[#-]+\] [0-9.]+% \d+\/128 chunks [0-9.]+ chunks\/s ETA \d+s/);
    expect(typescript).toContain('OK: 1 disk(s) checked, 128 chunk(s)');
  });

  it('says in --help what each command does, and what its special exit codes mean', async () => {
    const help = async (command: string) => (await runCairn([command, '--help'])).stdout.toString().replace(/\s+/g, ' ');
    expect(await help('cat')).toMatch(/write a disk.* to standard output.*exits 5 after writing every byte before the damaged chunk/);
    expect(await help('cat')).toMatch(/ends cat quietly with exit 0/);
    expect(await help('restore')).toMatch(/renamed into place.*damage \(exit 5\).*left as it was.*block device.*byte ranges/);
    expect(await help('verify')).toMatch(/5 damage found.*3 the VM, point or disk does not exist/);
    for (const command of ['backup', 'serve', 'mount', 'gc', 'prune']) expect(await help(command)).toMatch(/Exit codes?:/);
  });
});
