import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, runCairn, runJson, startCairn, waitFor } from '../helpers/cairn-cli.js';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

/** A user error: exactly one line on stderr naming `what`, no stack, no log record. */
function expectOneLine(stderr: string, what: string | RegExp): void {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^cairn: /);
  if (typeof what === 'string') expect(lines[0]).toContain(what);
  else expect(lines[0]).toMatch(what);
  expect(stderr).not.toMatch(/internal error|"stack"|\n {4}at /);
}

describe('cairn cat/restore destinations: full disks, missing directories, damage', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let repo: string;
  let image: Buffer;
  let point: string;
  const mounts: string[] = [];
  const loops: string[] = [];
  const cairn = (...args: string[]) => runCairn([...args, '--repo', repo]);

  /** A tmpfs of `size` (mount options) at a fresh directory; unmounted after the test. */
  async function smallFilesystem(name: string, options: string): Promise<string> {
    const mnt = join(dir.path, name);
    await mkdir(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', mnt]);
    mounts.push(mnt);
    return mnt;
  }

  /** Flips a byte in the chunk that holds disk offset `slot * CHUNK` of the point; returns its digest. */
  async function corruptChunk(slot: number): Promise<string> {
    const index = await readFile(join(repo, 'vms', 'v', point, 'sda.cidx'));
    const digest = index.subarray(32 + slot * 32, 32 + (slot + 1) * 32).toString('hex');
    const file = join(repo, 'chunks', digest.slice(0, 2), digest);
    await chmod(file, 0o644);
    const bytes = await readFile(file);
    bytes[bytes.length - 100]! ^= 0xff;
    await writeFile(file, bytes);
    return digest;
  }

  beforeEach(async () => {
    dir = await makeTempDir();
    repo = join(dir.path, 'repo');
    expect((await runCairn(['init', '--repo', repo, '--chunk-size', '64KiB'])).code).toBe(0);
    image = randomBytes(8 * MiB);
    await writeFile(join(dir.path, 'a.raw'), image);
    point = (await runJson<{ point: string }>(['backup', '--repo', repo, '--vm', 'v', '--disk', `sda=${join(dir.path, 'a.raw')}`])).point;
  });
  afterEach(async () => {
    for (const mnt of mounts.splice(0)) execFileSync('umount', ['-l', mnt]);
    for (const loop of loops.splice(0)) execFileSync('losetup', ['-d', loop]);
    await dir.cleanup();
  });

  it('cat into a file on a full filesystem exits 6 with one line', async () => {
    const small = await smallFilesystem('small', 'size=2m');
    const handle = await open(join(small, 'out.raw'), 'w');
    try {
      const result = await runCairn(['cat', '--repo', repo, 'cairn://v/latest/sda'], { stdout: handle.fd });
      expect(result.code).toBe(6);
      expectOneLine(result.stderr, 'no space left on device writing standard output');
    } finally {
      await handle.close();
    }
  });

  it('restore onto a full filesystem exits 6, names the destination and leaves nothing behind', async () => {
    const small = await smallFilesystem('small', 'size=4m');
    const dest = join(small, 'out.raw');
    const result = await cairn('restore', 'cairn://v/latest/sda', dest);
    expect(result.code).toBe(6);
    expectOneLine(result.stderr, `no space left on device writing ${dest}`);
    expect(await readdir(small)).toEqual([]);
  });

  it('names a destination whose directory is missing, not a directory, read-only or a directory itself', async () => {
    const missing = join(dir.path, 'no', 'such', 'dir', 'out.raw');
    const a = await cairn('restore', 'cairn://v/latest/sda', missing);
    expect(a.code).toBe(3);
    expectOneLine(a.stderr, `cannot write ${missing}: directory ${join(dir.path, 'no', 'such', 'dir')} does not exist`);

    const file = join(dir.path, 'a.raw');
    const b = await cairn('restore', 'cairn://v/latest/sda', join(file, 'out.raw'));
    expect(b.code).toBe(3);
    expectOneLine(b.stderr, `cannot write ${join(file, 'out.raw')}: a component of its path is not a directory`);

    const readOnly = await smallFilesystem('ro', 'size=1m,ro');
    const c = await cairn('restore', 'cairn://v/latest/sda', join(readOnly, 'out.raw'));
    expect(c.code).toBe(2);
    expectOneLine(c.stderr, `cannot write ${join(readOnly, 'out.raw')}: read-only filesystem`);

    const d = await cairn('restore', 'cairn://v/latest/sda', dir.path);
    expect(d.code).toBe(2);
    expectOneLine(d.stderr, `destination ${dir.path} is a directory`);

    // A character device cannot take a sparse file's rename: refused, and /dev/null stays a device.
    const e = await cairn('restore', 'cairn://v/latest/sda', '/dev/null', '--force');
    expect(e.code).toBe(2);
    expectOneLine(e.stderr, 'is neither a regular file nor a block device');
    expect((await stat('/dev/null')).isCharacterDevice()).toBe(true);
  });

  it('restore onto a file leaves no partial file on damage: no new file, an existing one untouched', async () => {
    // In the second 4 MiB piece of the disk.
    const digest = await corruptChunk(100);
    const dest = join(dir.path, 'out.raw');
    const fresh = await cairn('restore', 'cairn://v/latest/sda', dest);
    expect(fresh.code).toBe(5);
    expectOneLine(fresh.stderr, new RegExp(`chunk ${digest} .*; ${dest} was not created`));
    expect(await readdir(dir.path)).toEqual(['a.raw', 'repo']);

    const old = randomBytes(1 * MiB);
    await writeFile(dest, old);
    const forced = await cairn('restore', 'cairn://v/latest/sda', dest, '--force');
    expect(forced.code).toBe(5);
    expectOneLine(forced.stderr, `${dest} is left as it was`);
    expect((await readFile(dest)).equals(old)).toBe(true);
    expect((await readdir(dir.path)).sort()).toEqual(['a.raw', 'out.raw', 'repo']);

    // cat into a pipe cannot take bytes back: it writes what it read before the damage, then exits 5.
    const cat = await cairn('cat', 'cairn://v/latest/sda');
    expect(cat.code).toBe(5);
    expect(cat.stdout.equals(image.subarray(0, 4 * MiB))).toBe(true);
  });

  it('restore replaces an existing file only once complete, keeping its mode', async () => {
    const dest = join(dir.path, 'out.raw');
    await writeFile(dest, 'old');
    await chmod(dest, 0o600);
    expect((await cairn('restore', 'cairn://v/latest/sda', dest, '--force')).code).toBe(0);
    expect((await readFile(dest)).equals(image)).toBe(true);
    expect((await stat(dest)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir.path)).sort()).toEqual(['a.raw', 'out.raw', 'repo']);
  });

  it('an interrupted restore removes its temporary file', async () => {
    // Large enough that the restore is still running when the signal comes.
    const big = join(dir.path, 'big.raw');
    await writeFile(big, randomBytes(128 * MiB));
    expect((await runCairn(['backup', '--repo', repo, '--vm', 'big', '--disk', `sda=${big}`])).code).toBe(0);
    const out = join(dir.path, 'out');
    await mkdir(out);
    const child = startCairn(['restore', '--repo', repo, 'cairn://big/latest/sda', join(out, 'big.raw')]);
    await waitFor(async () => ((await readdir(out)).length > 0 ? true : undefined), 'the temporary file', 20_000);
    child.kill('SIGINT');
    const code = await new Promise((resolve) => child.once('close', resolve));
    expect(code).toBe(130);
    expect(await readdir(out)).toEqual([]);
  });

  it('restore onto a block device restores past damage and names exactly the ranges it could not', async () => {
    await corruptChunk(2);
    await corruptChunk(3);
    await corruptChunk(100);
    const backing = join(dir.path, 'loop.img');
    const old = Buffer.alloc(8 * MiB, 0x5a);
    await writeFile(backing, old);
    const loop = execFileSync('losetup', ['--find', '--show', backing]).toString().trim();
    loops.push(loop);
    const result = await cairn('restore', 'cairn://v/latest/sda', loop, '--force');
    expect(result.code).toBe(5);
    const ranges = `bytes ${2 * CHUNK}-${4 * CHUNK - 1}, ${100 * CHUNK}-${101 * CHUNK - 1}`;
    expectOneLine(result.stderr, `${loop} is restored except ${ranges}, which still hold the device's old data`);
    const device = await open(loop, 'r');
    const back = Buffer.alloc(8 * MiB);
    await device.read(back, 0, back.length, 0);
    await device.close();
    const expected = Buffer.from(image);
    old.copy(expected, 2 * CHUNK, 2 * CHUNK, 4 * CHUNK);
    old.copy(expected, 100 * CHUNK, 100 * CHUNK, 101 * CHUNK);
    expect(back.equals(expected)).toBe(true);
  });
});
