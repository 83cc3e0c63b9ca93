import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CAIRN_BIN, makeTempDir, type CliResult } from '../helpers/cairn-cli.js';

const MiB = 1024 * 1024;

/** Runs the CLI with the given umask, optionally as another user (runuser), and collects its output. */
function cairnAs(args: string[], options: { umask?: string; user?: string } = {}): Promise<CliResult> {
  const script = `umask ${options.umask ?? '022'} && exec "$@"`;
  const command = ['/bin/sh', '-c', script, 'sh', process.execPath, CAIRN_BIN, ...args];
  const argv = options.user !== undefined ? ['runuser', '-u', options.user, '--', ...command] : command;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, CAIRN_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
  });
}

/** Every path under `root` (root included) with its permission bits, group and kind. */
async function walk(root: string): Promise<{ path: string; mode: number; gid: number; dir: boolean }[]> {
  const result = [];
  const info = await lstat(root);
  result.push({ path: root, mode: info.mode & 0o7777, gid: info.gid, dir: info.isDirectory() });
  if (info.isDirectory()) for (const name of await readdir(root)) result.push(...(await walk(join(root, name))));
  return result;
}

const expectedMode = (path: string, dir: boolean, modes: { dir: number; file: number; config: number }) =>
  dir ? modes.dir : path.endsWith('/config') ? modes.config : modes.file;

describe('repository permissions', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let repo: string;
  let image: string;
  beforeEach(async () => {
    dir = await makeTempDir();
    // The temp dir itself is 0700 (mkdtemp); other users need to pass through it to the repository.
    await chmod(dir.path, 0o755);
    repo = join(dir.path, 'repo');
    image = join(dir.path, 'a.raw');
    await writeFile(image, randomBytes(MiB));
    await writeFile(join(dir.path, 'vm.conf'), 'cores: 2\n');
  });
  afterEach(() => dir.cleanup());

  /** init, a full backup with a config, an incremental (its lock is rewritten naming the base), gc. */
  async function useRepository(umask: string, initArgs: string[] = []): Promise<void> {
    expect((await cairnAs(['init', '--repo', repo, '--chunk-size', '64KiB', ...initArgs], { umask })).code).toBe(0);
    expect(
      (await cairnAs(['backup', '--repo', repo, '--vm', 'web', '--disk', `sda=${image}`, '--config', join(dir.path, 'vm.conf')], { umask }))
        .code,
    ).toBe(0);
    const changed = await readFile(image);
    changed.fill(7, 0, 4096);
    await writeFile(image, changed);
    expect((await cairnAs(['backup', '--repo', repo, '--vm', 'web', '--disk', `sda=${image}`, '--base', 'latest'], { umask })).code).toBe(
      0,
    );
    expect((await cairnAs(['gc', '--repo', repo, '--grace-seconds', '0'], { umask })).code).toBe(0);
  }

  for (const umask of ['022', '000']) {
    it(`is private by default under umask ${umask}: directories 0700, files 0400, config 0600`, async () => {
      await useRepository(umask);
      const entries = await walk(repo);
      expect(entries.filter((e) => /[0-9a-f]{64}$/.test(e.path)).length).toBeGreaterThan(16);
      expect(entries.some((e) => e.path.endsWith('.cidx'))).toBe(true);
      expect(entries.some((e) => e.path.endsWith('config.blob'))).toBe(true);
      for (const entry of entries) {
        expect(entry.mode.toString(8), entry.path).toBe(
          expectedMode(entry.path, entry.dir, { dir: 0o700, file: 0o400, config: 0o600 }).toString(8),
        );
      }
    });
  }

  it('a repository config without an access setting (an older repository) keeps umask behaviour', async () => {
    expect((await cairnAs(['init', '--repo', repo, '--chunk-size', '64KiB'])).code).toBe(0);
    const config = JSON.parse(await readFile(join(repo, 'config'), 'utf8')) as Record<string, unknown>;
    expect(config.access).toEqual({ mode: 'private' });
    delete config.access;
    await chmod(join(repo, 'config'), 0o644);
    await writeFile(join(repo, 'config'), JSON.stringify(config));
    expect((await cairnAs(['backup', '--repo', repo, '--vm', 'old', '--disk', `sda=${image}`], { umask: '022' })).code).toBe(0);
    const chunks = (await walk(join(repo, 'chunks'))).filter((e) => !e.dir);
    expect(new Set(chunks.map((e) => e.mode.toString(8)))).toEqual(new Set(['444']));
    expect((await lstat(join(repo, 'vms', 'old'))).mode & 0o777).toBe(0o755);
  });

  describe('with --shared-group', () => {
    const tag = randomBytes(3).toString('hex');
    const group = `cairn-ops-${tag}`;
    const member = `cairn-in-${tag}`;
    const outsider = `cairn-out-${tag}`;
    let gid: number;
    beforeAll(() => {
      execFileSync('groupadd', [group]);
      execFileSync('useradd', ['-M', '-N', '-G', group, member]);
      execFileSync('useradd', ['-M', '-N', outsider]);
      gid = Number(execFileSync('getent', ['group', group]).toString().split(':')[2]);
    });
    afterAll(() => {
      for (const user of [member, outsider]) execFileSync('userdel', [user], { stdio: 'ignore' });
      execFileSync('groupdel', [group], { stdio: 'ignore' });
    });

    it('lets a member of the group list and read, and nobody else', async () => {
      await useRepository('077', ['--shared-group', group]);
      for (const entry of await walk(repo)) {
        expect(entry.mode.toString(8), entry.path).toBe(
          expectedMode(entry.path, entry.dir, { dir: 0o2750, file: 0o440, config: 0o640 }).toString(8),
        );
        expect(entry.gid, entry.path).toBe(gid);
      }
      const ls = await cairnAs(['ls', '--repo', repo, 'cairn://web'], { user: member });
      expect(ls.code, ls.stderr).toBe(0);
      expect(ls.stdout.toString().trim().split('\n')).toHaveLength(2);
      const cat = await cairnAs(['cat', '--repo', repo, 'cairn://web/latest/sda'], { user: member });
      expect(cat.code, cat.stderr).toBe(0);
      expect(cat.stdout.equals(await readFile(image))).toBe(true);

      for (const args of [
        ['ls', '--repo', repo],
        ['cat', '--repo', repo, 'cairn://web/latest/sda'],
      ]) {
        const refused = await cairnAs(args, { user: outsider });
        expect(refused.code, args[0]).toBe(2);
        expect(refused.stderr).toMatch(/^cairn: cannot (open|read) the repository at .*: permission denied\n$/);
        expect(refused.stdout.length).toBe(0);
      }
    });

    it('refuses an unknown group before creating anything', async () => {
      const result = await cairnAs(['init', '--repo', repo, '--shared-group', `no-such-group-${tag}`]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/group 'no-such-group-.*' is not in \/etc\/group/);
      await expect(lstat(repo)).rejects.toMatchObject({ code: 'ENOENT' });
    });
  });
});
