// Backs up an image file through the real source dispatch (openSource + runBackup) and reads the
// point back, so format tests compare what Cairn stored against what qemu-img / rbd / vhdimount give.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { expect } from 'vitest';
import { isCairnError } from '../../src/core/errors.js';
import { openRepositoryCatalog } from '../../src/restore/catalog.js';
import { runBackup, type BackupResult } from '../../src/ingest/backup.js';
import { openSource, type SourceOptions } from '../../src/ingest/open-source.js';
import type { Repository } from '../../src/store/repository.js';
import type { DiskOrigin } from '../../src/store/manifest.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

export function sh(cmd: string, args: string[], options: { input?: Buffer } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 * MiB, ...options });
}

/** SHA-256 and size of a file (qemu-img convert output, rbd export…), read in a stream. */
export async function fileDigest(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const piece of createReadStream(path, { highWaterMark: MiB })) {
    hash.update(piece as Buffer);
    size += (piece as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

/** What qemu-img itself reads from an image: the oracle for qcow2 and VHD. */
export async function qemuRawDigest(image: string, dir: string, format?: string): Promise<{ sha256: string; size: number }> {
  const out = `${dir}/oracle-${Date.now()}-${Math.random().toString(36).slice(2)}.raw`;
  sh('qemu-img', ['convert', ...(format ? ['-f', format] : []), '-O', 'raw', image, out]);
  try {
    return await fileDigest(out);
  } finally {
    sh('rm', ['-f', out]);
  }
}

/** SHA-256 and size of a disk of a restore point, read through the catalog (the restore path). */
export async function pointDigest(repo: Repository, vm: string, point: string, disk: string): Promise<{ sha256: string; size: number }> {
  const catalog = await openRepositoryCatalog(repo.root);
  const reader = await catalog.openDisk(vm, point, disk);
  const hash = createHash('sha256');
  for (let at = 0; at < reader.size; at += 4 * MiB) hash.update(await reader.read(at, Math.min(4 * MiB, reader.size - at)));
  return { sha256: hash.digest('hex'), size: reader.size };
}

export interface ImageBackup extends BackupResult {
  bytesRead: number;
  origin: DiskOrigin | undefined;
}

/** One disk backed up from `spec` (a path, or '-' with `stdin`). */
export async function backupImage(
  repo: Repository,
  vm: string,
  spec: string,
  options: SourceOptions & { base?: string; stdinFile?: string } = {},
): Promise<ImageBackup> {
  const stdin = options.stdinFile ? createReadStream(options.stdinFile) : options.stdin;
  const source = await openSource(spec, { ...options, ...(stdin ? { stdin: stdin as Readable } : {}) });
  try {
    const result = await runBackup({ repo, vm, disks: [{ name: 'd', source }], ...(options.base ? { base: options.base } : {}) });
    const manifest = await repo.readManifest(vm, result.point);
    return { ...result, bytesRead: result.disks[0]!.bytesRead, origin: manifest.disks[0]!.origin };
  } finally {
    await source.close();
  }
}

/**
 * Backs up `spec` expecting a CairnError with `code` and a message matching `pattern`, and checks
 * that the failed backup left no new point.
 */
export async function expectBackupRefused(
  repo: Repository,
  vm: string,
  spec: string,
  code: string,
  pattern: RegExp,
  options: Parameters<typeof backupImage>[3] = {},
): Promise<void> {
  const before = await repo.listPointIds(vm);
  const failure = await backupImage(repo, vm, spec, options).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isCairnError(failure), String(failure)).toBe(true);
  expect((failure as { code: string }).code).toBe(code);
  expect((failure as Error).message).toMatch(pattern);
  expect(await repo.listPointIds(vm)).toEqual(before);
}
