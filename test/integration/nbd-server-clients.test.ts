import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cairn, canConnect, nbdUri, run, startServe, waitFor, type ServeProcess } from './nbd-server-harness.js';

// Real Debian clients against `cairn serve` on a repository made by `cairn init` / `cairn backup`.
// The image: 8 MiB, 256 KiB chunks; data at 0-1M (0xab), 3M-3.5M (0xcd), 7.75M-8M (0x5a); the second
// point also changes 5M-5.25M (0x22) and 0-64K (0x01).
const CHUNK = 256 * 1024;
const MiB = 1024 * 1024;

let dir: string;
let repo: string;
let socket: string;
let serve: ServeProcess;
let older: string;
let newer: string;

async function qemuIo(file: string, ...commands: string[]): Promise<void> {
  const r = await run('qemu-io', ['-f', 'raw', ...commands.flatMap((c) => ['-c', c]), file]);
  if (r.code !== 0) throw new Error(`qemu-io failed: ${r.stderr}`);
}

async function backup(image: string): Promise<string> {
  const out = await cairn(['backup', '--repo', repo, '--vm', 'vm1', '--disk', `sda=${image}`, '--json']);
  return (JSON.parse(out.stdout) as { point: string }).point;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-nbd-serve-'));
  repo = join(dir, 'repo');
  socket = join(dir, 'nbd.sock');
  const image = join(dir, 'disk.raw');
  expect((await run('qemu-img', ['create', '-f', 'raw', image, '8M'])).code).toBe(0);
  await qemuIo(image, 'write -P 0xab 0 1M', 'write -P 0xcd 3M 512k', 'write -P 0x5a 7936k 256k');
  await cairn(['init', '--repo', repo, '--chunk-size', '256KiB']);
  older = await backup(image);
  await run('cp', [image, join(dir, 'older.raw')]);
  await qemuIo(image, 'write -P 0x22 5M 256k', 'write -P 0x01 0 64k');
  // Point ids have one-second resolution.
  await new Promise((r) => setTimeout(r, 1100));
  newer = await backup(image);
  expect(newer).not.toBe(older);
  serve = await startServe(['--repo', repo, '--nbd', `unix:${socket}`]);
  await waitFor('the NBD socket', () => canConnect(socket));
});

afterAll(async () => {
  if (serve && serve.child.exitCode === null) {
    serve.child.kill('SIGKILL');
    await serve.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('cairn serve with real NBD clients', () => {
  it('qemu-img info reports the virtual size', async () => {
    const r = await run('qemu-img', ['info', '--output=json', nbdUri(socket, 'vm1/latest/sda')]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)['virtual-size']).toBe(8 * MiB);
  });

  it('qemu-img compare finds each point identical to its source image, and detects a difference', async () => {
    const same = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', join(dir, 'disk.raw'), nbdUri(socket, `vm1/${newer}/sda`)]);
    expect(same.code, same.stdout + same.stderr).toBe(0);
    const old = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', join(dir, 'older.raw'), nbdUri(socket, `vm1/${older}/sda`)]);
    expect(old.code, old.stdout + old.stderr).toBe(0);
    const differ = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', join(dir, 'older.raw'), nbdUri(socket, 'vm1/latest/sda')]);
    expect(differ.code).toBe(1);
  });

  it('qemu-img convert restores the exact bytes', async () => {
    const out = join(dir, 'restored.raw');
    const r = await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', nbdUri(socket, 'vm1/latest/sda'), out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out).equals(readFileSync(join(dir, 'disk.raw')))).toBe(true);
  });

  it('qemu-io -r reads the patterns back', async () => {
    const r = await run('qemu-io', [
      '-r',
      '-f',
      'raw',
      ...[
        'read -P 0x01 0 64k',
        'read -P 0xab 64k 960k',
        'read -P 0 1M 2M',
        'read -P 0xcd 3M 512k',
        'read -P 0x22 5M 256k',
        'read -P 0x5a 7936k 256k',
        'read -P 0 3584k 1536k',
      ].flatMap((c) => ['-c', c]),
      nbdUri(socket, 'vm1/latest/sda'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/Pattern verification failed/);
    expect(r.stdout.match(/^read /gm)).toHaveLength(7);
  });

  it('nbdinfo --list names every disk of every point and the latest alias', async () => {
    const r = await run('nbdinfo', ['--list', '--json', `nbd+unix:///?socket=${socket}`]);
    expect(r.code, r.stderr).toBe(0);
    const names = (JSON.parse(r.stdout) as { exports: { 'export-name': string }[] }).exports.map((e) => e['export-name']);
    expect(names.sort()).toEqual([`vm1/${older}/sda`, `vm1/${newer}/sda`, 'vm1/latest/sda'].sort());
  });

  it('nbdinfo --map shows holes exactly at the zero chunks', async () => {
    const r = await run('nbdinfo', ['--map', '--json', nbdUri(socket, `vm1/${older}/sda`)]);
    expect(r.code, r.stderr).toBe(0);
    const map = (JSON.parse(r.stdout) as { offset: number; length: number; type: number }[]).map((e) => [e.offset, e.length, e.type]);
    expect(map).toEqual([
      [0, 1 * MiB, 0],
      [1 * MiB, 2 * MiB, 3],
      [3 * MiB, 512 * 1024, 0],
      [3.5 * MiB, 7936 * 1024 - 3.5 * MiB, 3],
      [7936 * 1024, CHUNK, 0],
    ]);
  });

  it('nbdinfo --map=cairn:changed:POINT marks exactly the changed chunks', async () => {
    const r = await run('nbdinfo', [`--map=cairn:changed:${older}`, '--json', nbdUri(socket, 'vm1/latest/sda')]);
    expect(r.code, r.stderr).toBe(0);
    const map = (JSON.parse(r.stdout) as { offset: number; length: number; type: number }[]).map((e) => [e.offset, e.length, e.type]);
    expect(map).toEqual([
      [0, CHUNK, 1],
      [CHUNK, 5 * MiB - CHUNK, 0],
      [5 * MiB, CHUNK, 1],
      [5 * MiB + CHUNK, 3 * MiB - CHUNK, 0],
    ]);
  });

  it('qemu reads cairn:changed like a qemu:dirty-bitmap (x-dirty-bitmap): changed ranges show as data=false', async () => {
    const opts = `driver=nbd,server.type=unix,server.path=${socket},export=vm1/latest/sda,x-dirty-bitmap=cairn:changed:${older}`;
    const r = await run('qemu-img', ['map', '--output=json', '--image-opts', opts]);
    expect(r.code, r.stderr).toBe(0);
    const map = (JSON.parse(r.stdout) as { start: number; length: number; data: boolean }[]).map((e) => [e.start, e.length, e.data]);
    expect(map).toEqual([
      [0, CHUNK, false],
      [CHUNK, 5 * MiB - CHUNK, true],
      [5 * MiB, CHUNK, false],
      [5 * MiB + CHUNK, 3 * MiB - CHUNK, true],
    ]);
  });

  it('nbdcopy with four connections copies the disk exactly', async () => {
    const out = join(dir, 'nbdcopy.raw');
    const r = await run('nbdcopy', ['--connections=4', '--requests=16', nbdUri(socket, 'vm1/latest/sda'), out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out).equals(readFileSync(join(dir, 'disk.raw')))).toBe(true);
  });

  it('serves a point created while it runs, without a restart', async () => {
    const image = join(dir, 'other.raw');
    await run('qemu-img', ['create', '-f', 'raw', image, '1M']);
    await qemuIo(image, 'write -P 0x77 0 1M');
    await cairn(['backup', '--repo', repo, '--vm', 'vm2', '--disk', `vdb=${image}`]);
    const r = await run('qemu-io', ['-r', '-f', 'raw', '-c', 'read -P 0x77 0 1M', nbdUri(socket, 'vm2/latest/vdb')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/Pattern verification failed/);
  });

  it('refuses writes through a real client', async () => {
    const r = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x99 0 4k', nbdUri(socket, 'vm1/latest/sda')]);
    // QEMU sees NBD_FLAG_READ_ONLY and refuses to open the export for writing.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Permission denied/);
  });

  it('stops cleanly on SIGTERM', async () => {
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    expect(serve.stderr()).toMatch(/NBD server stopped/);
  });
});
