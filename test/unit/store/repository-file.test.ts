import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openBeneath, readBeneath } from '../../../src/store/repository-file.js';
import { makeTempDir } from '../../helpers/cairn-cli.js';

describe('reading files beneath a repository root', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    dir = await makeTempDir();
    await mkdir(join(dir.path, 'root', 'a'), { recursive: true });
    await mkdir(join(dir.path, 'outside'));
    await writeFile(join(dir.path, 'root', 'a', 'file'), 'inside');
    await writeFile(join(dir.path, 'outside', 'file'), 'outside');
    await symlink(join(dir.path, 'outside'), join(dir.path, 'root', 'linked-dir'));
    await symlink(join(dir.path, 'outside', 'file'), join(dir.path, 'root', 'a', 'linked-file'));
    execFileSync('mkfifo', [join(dir.path, 'root', 'a', 'fifo')]);
  });
  afterEach(() => dir.cleanup());

  const root = () => join(dir.path, 'root');
  const limit = { name: 'f', maxBytes: 100 };

  for (const viaProc of [true, false]) {
    it(`${viaProc ? 'through /proc/self/fd' : 'with lstat checks (no /proc)'}: follows no symlink below the root`, async () => {
      const handle = await openBeneath(root(), ['a', 'file'], { viaProc });
      expect((await handle.readFile()).toString()).toBe('inside');
      await handle.close();
      await expect(openBeneath(root(), ['linked-dir', 'file'], { viaProc })).rejects.toMatchObject({
        code: expect.stringMatching(/ELOOP|ENOTDIR/),
      });
      await expect(openBeneath(root(), ['a', 'linked-file'], { viaProc })).rejects.toMatchObject({ code: 'ELOOP' });
      await expect(openBeneath(root(), ['a', '..', 'a', 'file'], { viaProc })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    });
  }

  it('reads regular files within their bounds only, without waiting on a FIFO', async () => {
    expect((await readBeneath(root(), ['a', 'file'], limit)).toString()).toBe('inside');
    await expect(readBeneath(root(), ['a', 'file'], { name: 'f', maxBytes: 5 })).rejects.toMatchObject({ code: 'ERR_FORMAT_INVALID' });
    await expect(readBeneath(root(), ['a', 'file'], { name: 'f', maxBytes: 100, minBytes: 7 })).rejects.toMatchObject({
      code: 'ERR_FORMAT_INVALID',
    });
    await expect(readBeneath(root(), ['a', 'fifo'], limit)).rejects.toMatchObject({
      code: 'ERR_FORMAT_INVALID',
      message: expect.stringMatching(/not a regular file/),
    });
    await expect(readBeneath(root(), ['a', 'linked-file'], limit)).rejects.toMatchObject({
      code: 'ERR_FORMAT_INVALID',
      message: expect.stringMatching(/symbolic link/),
    });
    await expect(readBeneath(root(), ['a', 'missing'], limit)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
