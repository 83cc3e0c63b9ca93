import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mountCatalog, type FuseMount } from '../../src/fuse/index.js';
import type { Repository } from '../../src/store/repository.js';
import { MiB, flipByte, makeTempDir } from '../helpers/disk-images.js';
import {
  TEST_CHUNK_SIZE,
  backup,
  catalogOf,
  chunkFileAt,
  exited,
  isMounted,
  makeRepository,
  sh,
  shOk,
  start,
  waitFor,
} from '../helpers/fuse-harness.js';

const CHILD = join(import.meta.dirname, '..', 'helpers', 'fuse-mount-child.mjs');
const DIST_ENTRY = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'commands', 'mount.js');
const CAIRN = join(import.meta.dirname, '..', '..', 'bin', 'cairn');

let dir: string;
let mnt: string;
let repo: Repository;
const mounts: FuseMount[] = [];
const children: Array<ReturnType<typeof start>> = [];

beforeEach(async () => {
  dir = makeTempDir('fuse-life');
  mnt = join(dir, 'mnt');
  repo = await makeRepository(join(dir, 'repo'));
});

afterEach(async () => {
  for (const mount of mounts.splice(0)) await mount.unmount();
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (await isMounted(mnt)) await sh('fusermount', ['-u', '-z', mnt]);
  rmSync(dir, { recursive: true, force: true });
});

function randomDisk(name: string, size: number): string {
  const path = join(dir, name);
  writeFileSync(path, randomBytes(size));
  return path;
}

/** `cairn mount` itself, as an operator runs it. */
function startCairnMount(): ReturnType<typeof start> {
  expect(existsSync(DIST_ENTRY), 'dist/ is missing: run npm run build').toBe(true);
  const child = start(process.execPath, [CAIRN, 'mount', mnt, '--repo', join(dir, 'repo')]);
  children.push(child);
  return child;
}

function startMountProcess(delayMs = 0): ReturnType<typeof start> {
  // The child runs the compiled code, like bin/cairn: `npm test` builds first.
  expect(existsSync(DIST_ENTRY), 'dist/ is missing: run npm run build').toBe(true);
  const child = start(process.execPath, [CHILD, join(dir, 'repo'), mnt, String(delayMs)], { CAIRN_LOG_LEVEL: 'info' });
  children.push(child);
  return child;
}

describe('FUSE mount lifecycle', () => {
  it('gives EIO for a damaged chunk only, logs the chunk, and keeps serving', async () => {
    const sda = randomDisk('sda.img', 2 * MiB);
    const sdb = randomDisk('sdb.img', MiB);
    const point = await backup(repo, 'vm', { sda, sdb });
    const catalog = catalogOf(repo);
    const damaged = await chunkFileAt(catalog, 'vm', point, 'sda', 3 * TEST_CHUNK_SIZE);
    flipByte(damaged, 100);
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
    mounts.push(await mountCatalog(catalog, mnt, { log }));
    const file = join(mnt, 'vm', point, 'sda.raw');
    const bs = `bs=${TEST_CHUNK_SIZE}`;

    const bad = await sh('dd', [`if=${file}`, 'of=/dev/null', bs, 'skip=3', 'count=1']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/Input\/output error/);
    const digest = damaged.split('/').pop()!;
    expect(
      lines.some((line) => line.includes(digest) && line.includes('ERR_CHUNK_CORRUPT')),
      lines.join(''),
    ).toBe(true);

    // The chunks around it, and other files, read fine.
    const before = join(dir, 'before.bin');
    await shOk('dd', [`if=${file}`, `of=${before}`, bs, 'count=3']);
    expect((await sh('cmp', ['-n', String(3 * TEST_CHUNK_SIZE), before, sda])).code).toBe(0);
    const after = join(dir, 'after.bin');
    await shOk('dd', [`if=${file}`, `of=${after}`, bs, 'skip=4']);
    expect((await sh('cmp', [after, sda, '0', String(4 * TEST_CHUNK_SIZE)])).code).toBe(0);
    expect((await sh('cmp', [sdb, join(mnt, 'vm', point, 'sdb.raw')])).code).toBe(0);
    // A whole-file copy fails instead of yielding wrong bytes.
    expect((await sh('cmp', [sda, file])).code).not.toBe(0);
    expect(await isMounted(mnt)).toBe(true);
  });

  it('unmounts cleanly on SIGTERM while a read is in flight', async () => {
    const point = await backup(repo, 'vm', { sda: randomDisk('sda.img', 4 * MiB) });
    const child = startMountProcess(400);
    await waitFor('the mount', () => child.output().includes('MOUNTED'));
    const reader = start('dd', [`if=${join(mnt, 'vm', point, 'sda.raw')}`, 'of=/dev/null', 'bs=1M']);
    children.push(reader);
    await waitFor('a read in flight', () => child.output().includes('READ '));
    child.kill('SIGTERM');
    const code = await Promise.race([exited(child), new Promise((r) => setTimeout(() => r('hung'), 20_000))]);
    expect(code, child.output()).toBe(0);
    expect(child.output()).toMatch(/letting requests in flight finish/);
    expect(child.output()).toContain('UNMOUNTED');
    expect(await isMounted(mnt)).toBe(false);
    // The reader ends (with whatever it got) instead of hanging on a dead mount.
    const readerCode = await Promise.race([exited(reader), new Promise((r) => setTimeout(() => r('hung'), 20_000))]);
    expect(readerCode).not.toBe('hung');
  });

  it('replaces a stale mount left by a crashed process, saying so', async () => {
    const source = randomDisk('sda.img', MiB);
    const point = await backup(repo, 'vm', { sda: source });
    const crashed = startCairnMount();
    await waitFor('the first mount', () => isMounted(mnt));
    crashed.kill('SIGKILL');
    await exited(crashed);
    const stale = await sh('stat', [mnt]);
    expect(stale.stderr).toMatch(/Transport endpoint is not connected/);

    const again = startCairnMount();
    await waitFor('the second mount', () => again.output().includes('restore points mounted'));
    expect(again.output()).toMatch(/stale FUSE mount/);
    expect((await sh('cmp', [source, join(mnt, 'vm', point, 'sda.raw')])).code).toBe(0);
    again.kill('SIGINT');
    expect(await exited(again)).toBe(0);
    expect(again.output()).toMatch(/SIGINT received: unmounting/);
    expect(await isMounted(mnt)).toBe(false);
  });

  it('ends, exit code 0, when the mount is unmounted from outside (fusermount -u, umount -l)', async () => {
    const source = randomDisk('sda.img', MiB);
    const point = await backup(repo, 'vm', { sda: source });
    for (const unmount of [
      ['fusermount', '-u', mnt],
      ['umount', '-l', mnt],
    ]) {
      const child = startCairnMount();
      await waitFor('the mount', () => child.output().includes('restore points mounted'));
      expect((await sh('cmp', [source, join(mnt, 'vm', point, 'sda.raw')])).code).toBe(0);
      await shOk(unmount[0]!, unmount.slice(1));
      const code = await Promise.race([exited(child), new Promise((r) => setTimeout(() => r('hung'), 15_000))]);
      expect(code, child.output()).toBe(0);
      expect(child.output()).toMatch(/was unmounted from outside/);
    }
  });

  it('refuses a second mount on a live one with a clear message', async () => {
    await backup(repo, 'vm', { sda: randomDisk('sda.img', MiB) });
    const first = startCairnMount();
    await waitFor('the first mount', () => first.output().includes('restore points mounted'));
    const second = startCairnMount();
    expect(await exited(second)).not.toBe(0);
    expect(second.output()).toMatch(/is already a mount point/);
    first.kill('SIGTERM');
    expect(await exited(first)).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
  });
});
