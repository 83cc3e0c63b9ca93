import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, runCairn, runJson, startCairn, waitFor } from '../helpers/cairn-cli.js';

const MiB = 1024 * 1024;

function isMounted(dir: string): Promise<boolean> {
  return readFile('/proc/self/mounts', 'utf8').then((mounts) => mounts.split('\n').some((line) => line.split(' ')[1] === dir));
}

describe('cairn serve --mount (NBD and FUSE from one process)', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let child: ChildProcess | undefined;
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    const mnt = join(dir.path, 'mnt');
    if (await isMounted(mnt)) execFileSync('umount', ['-l', mnt]);
    await dir.cleanup();
  });

  it('creates the default repository, serves NBD and the FUSE tree, and stops both on SIGTERM', async () => {
    const dataHome = join(dir.path, 'data');
    const env = { XDG_DATA_HOME: dataHome, CAIRN_REPO: '', CAIRN_LOG_LEVEL: 'info' };
    const socket = join(dir.path, 'nbd.sock');
    const mnt = join(dir.path, 'mnt');
    await mkdir(mnt);
    child = startCairn(['serve', '--nbd', `unix:${socket}`, '--mount', mnt], env);
    const stderr: Buffer[] = [];
    child.stderr!.on('data', (d: Buffer) => stderr.push(d));
    await waitFor(
      async () =>
        ((await isMounted(mnt)) &&
          (await stat(socket).then(
            () => true,
            () => false,
          ))) ||
        undefined,
      'serve to listen and mount',
    );
    expect(Buffer.concat(stderr).toString()).toContain(`created the default repository ${join(dataHome, 'cairn')}`);

    // A backup into the default repository appears in both views without a restart.
    const image = join(dir.path, 'disk.raw');
    await writeFile(image, randomBytes(3 * MiB));
    const backup = await runJson<{ point: string }>(['backup', '--vm', 'web', '--disk', `sda=${image}`], { env });
    await waitFor(
      async () =>
        stat(join(mnt, 'web', backup.point, 'sda.raw')).then(
          () => true,
          () => undefined,
        ),
      'the new point in the FUSE tree',
    );
    execFileSync('cmp', [image, join(mnt, 'web', backup.point, 'sda.raw')]);
    const viaNbd = join(dir.path, 'via-nbd.raw');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `nbd+unix:///web/latest/sda?socket=${socket}`, viaNbd]);
    execFileSync('cmp', [image, viaNbd]);

    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child!.once('exit', resolve));
    expect(code).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
    expect((await runCairn(['ls', '--json'], { env })).code).toBe(0);
  });
});
