import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CAIRN_BIN, makeTempDir, runCairn, runJson, waitFor } from '../helpers/cairn-cli.js';

const MiB = 1024 * 1024;

function expectUsageError(result: { code: number | null; stderr: string }, ...needles: string[]): void {
  expect({ code: result.code, lines: result.stderr.trim().split('\n').length }).toEqual({ code: 2, lines: 1 });
  for (const needle of needles) expect(result.stderr).toContain(needle);
  expect(result.stderr).not.toMatch(/internal error|\n {4}at /);
}

describe('cairn refuses bad input with exit 2 and one line', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let repo: string;
  let disk: string;
  const cairn = (...args: string[]) => runCairn([...args, '--repo', repo]);
  beforeEach(async () => {
    dir = await makeTempDir();
    repo = join(dir.path, 'repo');
    expect((await runCairn(['init', '--repo', repo, '--chunk-size', '64KiB'])).code).toBe(0);
    disk = join(dir.path, 'disk.raw');
    // 256 blocks of 64 KiB: a Xen CBT bitmap of exactly 32 bytes.
    await writeFile(disk, randomBytes(16 * MiB));
    expect((await cairn('backup', '--vm', 'xen', '--disk', `xvda=${disk}`)).code).toBe(0);
  });
  afterEach(() => dir.cleanup());

  it('checks every numeric option of every command with one rule: option, expectation and value named', async () => {
    const backup = ['backup', '--vm', 'xen', '--disk', `xvda=${disk}`];
    const cases: [string[], string][] = [
      [[...backup, '--bwlimit', 'fast'], "--bwlimit must be a size such as 64KiB, 100MiB or 1GiB, got 'fast'"],
      [[...backup, '--bwlimit', '0'], "--bwlimit must be a size of at least 1 B, got '0'"],
      [[...backup, '--connections', '0'], "--connections must be a whole number from 1 to 16, got '0'"],
      [[...backup, '--connections', '1.5'], "--connections must be a whole number from 1 to 16, got '1.5'"],
      [[...backup, '--connections', '99'], "--connections must be a whole number from 1 to 16, got '99'"],
      [[...backup, '--nbd-timeout', '-1'], "--nbd-timeout must be a number greater than 0, got '-1'"],
      [[...backup, '--nbd-timeout', '0'], "--nbd-timeout must be a number greater than 0, got '0'"],
      [[...backup, '--nbd-connect-timeout', '5s'], "--nbd-connect-timeout must be a number greater than 0, got '5s'"],
      [[...backup, '--block-size', '100'], "--block-size must be a size of at least 512 B, got '100'"],
      [['serve', '--cache-mib', '-5'], "--cache-mib must be a whole number of at least 16, got '-5'"],
      [['serve', '--max-connections', '0'], "--max-connections must be a whole number of at least 1, got '0'"],
      [['mount', join(dir.path, 'mnt'), '--cache-mib', 'lots'], "--cache-mib must be a whole number of at least 16, got 'lots'"],
      [['gc', '--grace-seconds', '-100'], "--grace-seconds must be a number of at least 0, got '-100'"],
      [['gc', '--grace-seconds', 'NaN'], "--grace-seconds must be a number of at least 0, got 'NaN'"],
      [['prune', '--keep-last', 'abc'], "--keep-last must be a whole number of at least 0, got 'abc'"],
      [['prune', '--keep-daily', '-1'], "--keep-daily must be a whole number of at least 0, got '-1'"],
      [
        ['init', '--repo', join(dir.path, 'other'), '--chunk-size', 'big'],
        "--chunk-size must be a size such as 64KiB, 100MiB or 1GiB, got 'big'",
      ],
    ];
    for (const [args, message] of cases) expectUsageError(await cairn(...args), message);
    // Nothing was done: one point, no second repository.
    expect((await runJson<unknown[]>(['ls', '--repo', repo, 'cairn://xen'])).length).toBe(1);
    expect((await runCairn(['ls', '--repo', join(dir.path, 'other')])).code).toBe(3);
    // What the rules accept still works (NBD options are ignored for a file disk).
    expect((await cairn(...backup, '--connections', '16', '--nbd-timeout', '0.5', '--bwlimit', '100MiB')).code).toBe(0);
    expect((await cairn('gc', '--grace-seconds', '0', '--dry-run')).code).toBe(0);
    expect((await cairn('prune', '--keep-last', '1', '--keep-daily', '0', '--dry-run')).code).toBe(0);
  });

  it('refuses a changed-block bitmap that is longer than the disk needs or is not valid base64', async () => {
    const incremental = (bitmap: string) => [
      'backup',
      '--vm',
      'xen',
      '--disk',
      `xvda=${disk}`,
      '--base',
      'latest',
      '--changed-blocks',
      `xvda=${bitmap}`,
    ];
    const write = async (name: string, content: string | Buffer) => {
      const path = join(dir.path, name);
      await writeFile(path, content);
      return path;
    };
    // 32 bytes cover the 256 blocks; blktap's 64-bit words allow no more here.
    const long = await write('long.b64', Buffer.alloc(40).toString('base64'));
    expectUsageError(await cairn(...incremental(long)), "changed-block bitmap for 'xvda' covers 320 blocks", 'more than the disk');
    const longRaw = await write('long.raw', Buffer.alloc(4096, 0x00));
    expectUsageError(await cairn(...incremental(longRaw)), 'covers 32768 blocks');
    const notBase64 = await write('bad.b64', 'this is not base64!\n');
    expectUsageError(await cairn(...incremental(notBase64)), `--changed-blocks xvda=${notBase64}`, 'not valid base64');
    const badPadding = await write('pad.b64', 'AAAA=AAA');
    expectUsageError(await cairn(...incremental(badPadding)), 'not valid base64');
    const truncated = await write('short.b64', 'AAAAA');
    expectUsageError(await cairn(...incremental(truncated)), 'not valid base64');
    expect((await runJson<unknown[]>(['ls', '--repo', repo, 'cairn://xen'])).length).toBe(1);

    const exact = await write('exact.b64', Buffer.alloc(32).toString('base64') + '\n');
    expect((await cairn(...incremental(exact))).code).toBe(0);
    // A disk of 248 blocks needs 31 bytes; XAPI may round up to the next 64-bit word.
    await writeFile(disk, randomBytes(248 * 65536));
    expect((await cairn('backup', '--vm', 'odd', '--disk', `xvda=${disk}`)).code).toBe(0);
    const padded = await write('padded.b64', Buffer.alloc(32).toString('base64'));
    const oddIncremental = incremental(padded).map((arg) => (arg === 'xen' ? 'odd' : arg));
    expect((await cairn(...oddIncremental)).code).toBe(0);
  });

  it('verify of a VM, point or disk that does not exist exits 3, not "OK: 0 disk(s)"', async () => {
    const cases: [string, string][] = [
      ['cairn://nosuchvm', "VM 'nosuchvm' has no restore points"],
      ['cairn://xen/20200101T000000Z', "point '20200101T000000Z' of VM 'xen' does not exist"],
      ['cairn://xen/latest/nosuchdisk', "has no disk 'nosuchdisk' (it has xvda)"],
    ];
    for (const [url, message] of cases) {
      const result = await cairn('verify', url);
      expect({ url, code: result.code, stdout: result.stdout.toString() }).toEqual({ url, code: 3, stdout: '' });
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain(message);
    }
    expectUsageError(await cairn('verify', 'cairn://xen/latest/xvda/p1'), 'verify checks whole disks');
    for (const url of ['cairn://xen', 'cairn://xen/latest', 'cairn://xen/latest/xvda']) {
      const result = await cairn('verify', url);
      expect(result.code).toBe(0);
      expect(result.stdout.toString()).toMatch(/^OK: 1 disk\(s\) checked, 256 chunk\(s\)/);
    }
  });
});

/** The file libfuse.so.2 resolves to, as the dynamic linker finds it. */
function libfusePath(): string {
  const line = execFileSync('ldconfig', ['-p'])
    .toString()
    .split('\n')
    .find((l) => /\blibfuse\.so\.2 \(/.test(l));
  if (!line) throw new Error('libfuse.so.2 is not installed (scripts/install-test-peers.sh installs libfuse2)');
  return realpathSync(line.split('=> ')[1]!.trim());
}

/**
 * Runs a shell script in a private mount namespace: what it hides is hidden from this run only.
 * unshare and the script's final `exec` keep one process, so `child.pid` is the command's own.
 */
function inMountNamespace(script: string, env: NodeJS.ProcessEnv = {}) {
  const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], {
    env: { ...process.env, CAIRN_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
  return { child, done, stderr: () => stderr };
}

describe('FUSE is loaded only where it is used', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let repo: string;
  beforeEach(async () => {
    dir = await makeTempDir();
    repo = join(dir.path, 'repo');
    expect((await runCairn(['init', '--repo', repo])).code).toBe(0);
  });
  afterEach(() => dir.cleanup());

  const cairn = `'${process.execPath}' '${CAIRN_BIN}'`;

  it('without libfuse2, serve works and mount says what to install in one line', async () => {
    const hide = `mount --bind /dev/null '${libfusePath()}'`;
    const socket = join(dir.path, 'nbd.sock');
    // serve without --mount: listens, and stops cleanly on SIGTERM.
    const serve = inMountNamespace(`${hide} && exec ${cairn} serve --repo '${repo}' --nbd 'unix:${socket}'`, { CAIRN_LOG_LEVEL: 'info' });
    try {
      await waitFor(() => serve.stderr().includes('serving restore points over NBD') || undefined, 'serve to listen');
    } finally {
      serve.child.kill('SIGTERM');
    }
    const served = await serve.done;
    expect(served.code).toBe(0);
    expect(served.stderr).toContain('serving restore points over NBD');
    expect(served.stderr).not.toMatch(/libfuse|\n {4}at /);

    const mnt = join(dir.path, 'mnt');
    const message = 'cairn: FUSE is not available: libfuse.so.2 cannot be loaded';
    for (const command of [`mount --repo '${repo}' '${mnt}'`, `serve --repo '${repo}' --nbd 'unix:${socket}' --mount '${mnt}'`]) {
      const result = await inMountNamespace(`${hide} && exec ${cairn} ${command}`).done;
      expect(result.code).toBe(8);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain(message);
      expect(result.stderr).toContain("install it with 'apt install libfuse2'");
    }
  });

  it('without the fuse-native package (npm skips the optional dependency without libfuse2), mount says to reinstall', async () => {
    const empty = join(dir.path, 'empty');
    await mkdir(empty);
    const fuseNative = fileURLToPath(new URL('../../node_modules/fuse-native', import.meta.url));
    const result = await inMountNamespace(
      `mount --bind '${empty}' '${fuseNative}' && exec ${cairn} mount --repo '${repo}' '${join(dir.path, 'mnt')}'`,
    ).done;
    expect(result.code).toBe(8);
    expect(result.stderr).toBe(
      "cairn: FUSE is not available: the fuse-native package is not installed (npm skips it without libfuse2); run 'npm install' again\n",
    );
  });

  it('without /dev/fuse or fusermount, mount says what is missing in one line', async () => {
    const mnt = join(dir.path, 'mnt');
    const noDevice = await inMountNamespace(`mount -t tmpfs tmpfs /dev && exec ${cairn} mount --repo '${repo}' '${mnt}'`).done;
    expect(noDevice.code).toBe(8);
    expect(noDevice.stderr).toBe(
      'cairn: FUSE is not available: /dev/fuse is missing (load the module: modprobe fuse; in a container, pass the device: --device /dev/fuse)\n',
    );
    // libfuse mounts (unless root) and fuse-native unmounts through fusermount: here, not on PATH.
    const noFusermount = await inMountNamespace(`exec env PATH=/nonexistent ${cairn} mount --repo '${repo}' '${mnt}'`).done;
    expect(noFusermount.code).toBe(8);
    expect(noFusermount.stderr).toBe("cairn: FUSE is not available: fusermount is not installed; install it with 'apt install fuse3'\n");
  });
});
