// Features the reader refuses or flags: unknown incompatible bits and refused features
// (ERR_UNSUPPORTED naming them), encrypted inodes, and a journal that needs recovery (read, noted).
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../../../src/core/errors.js';
import { Ext4FileSystem } from '../../../../src/guest/fs/ext4/index.js';
import { openFileSystem } from '../../../../src/guest/fs/drivers.js';
import { ImageReader, mkfs, run, tempDir } from '../../../helpers/ext4-images.js';
import { crc32cUpdate } from '../../../../src/util/crc32c.js';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';

let dir: string;
beforeAll(() => {
  dir = tempDir('ext4feat');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Sets incompat bits in the primary superblock and re-signs it, as a newer mke2fs would have written it. */
function setIncompat(image: string, bits: number): void {
  const fd = openSync(image, 'r+');
  const sb = Buffer.alloc(1024);
  readSync(fd, sb, 0, 1024, 1024);
  sb.writeUInt32LE((sb.readUInt32LE(0x60) | bits) >>> 0, 0x60);
  sb.writeUInt32LE(crc32cUpdate(0xffffffff, sb, 0, 0x3fc), 0x3fc);
  writeSync(fd, sb, 0, 1024, 1024);
  closeSync(fd);
}

async function openError(image: string): Promise<CairnError> {
  const reader = new ImageReader(image);
  try {
    return (await openFileSystem(reader, { name: 'v' }).then(
      () => undefined,
      (e: unknown) => e,
    )) as CairnError;
  } finally {
    reader.close();
  }
}

describe('ext4 features', () => {
  it('refuses unknown incompatible features and the ones it cannot read, naming them', async () => {
    const unknown = mkfs(join(dir, 'u.img'), { size: 8 << 20 });
    setIncompat(unknown, 0x100000);
    const err = await openError(unknown);
    expect(err).toBeInstanceOf(CairnError);
    expect(err.code).toBe('ERR_UNSUPPORTED');
    expect(err.message).toContain("'incompat 0x100000'");
    const dirdata = mkfs(join(dir, 'd.img'), { size: 8 << 20 });
    setIncompat(dirdata, 0x1000);
    expect((await openError(dirdata)).message).toContain("'dirdata'");
  });

  it('refuses an encrypted inode but reads the rest', async () => {
    const src = join(dir, 'src');
    run('mkdir', ['-p', src]);
    writeFileSync(join(src, 'secret'), 'ciphertext, really');
    writeFileSync(join(src, 'open'), 'plain');
    const image = mkfs(join(dir, 'e.img'), { size: 8 << 20, from: src });
    run('debugfs', ['-w', '-R', 'sif /secret flags 0x80800', image]);
    const reader = new ImageReader(image);
    const fs = await openFileSystem(reader, { name: 'v' });
    const secret = (await fs.lookup(fs.rootId, Buffer.from('secret')))!.id;
    const open = (await fs.lookup(fs.rootId, Buffer.from('open')))!.id;
    const err = (await fs.read(secret, 0, 10).catch((e: unknown) => e)) as CairnError;
    expect(err.code).toBe('ERR_UNSUPPORTED');
    expect(err.message).toContain("'encrypt'");
    expect((await fs.read(open, 0, 10)).toString()).toBe('plain');
    reader.close();
  });

  it('reads a volume whose journal needs recovery and notes it', async () => {
    const image = mkfs(join(dir, 'r.img'), { size: 16 << 20 });
    run('debugfs', ['-w', '-R', 'feature needs_recovery', image]);
    const reader = new ImageReader(image);
    const fs = (await openFileSystem(reader, { name: 'v' })) as Ext4FileSystem;
    expect(fs.notes.join(' ')).toContain('journal needs recovery');
    expect((await fs.stat(fs.rootId)).type).toBe('dir');
    reader.close();
  });
});
