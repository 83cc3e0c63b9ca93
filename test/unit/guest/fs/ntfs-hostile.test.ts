// Hand-made damage on an image filled through ntfs-3g, each aimed at one check: a torn MFT record
// (update sequence mismatch), a wiped boot sector (the backup takes over), an encrypted file, an
// unknown NTFS version, a dirty volume, an index block pointing at itself, absurd sizes, a runlist
// outside the volume and an attribute list naming another file's record. Each must end in a clean
// CairnError naming the structure (or read as is where that is right), and ntfs-3g is asked where
// it can tell. Also one odd but valid case ntfs-3g cannot make: a name with an unpaired surrogate.
import { spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../../../src/core/errors.js';
import type { GuestFileSystem } from '../../../../src/core/guest-filesystem.js';
import { ntfsDriver } from '../../../../src/guest/fs/ntfs/index.js';
import type { NtfsFileSystem } from '../../../../src/guest/fs/ntfs/index.js';
import {
  attributeOffset,
  copyImage,
  ImageReader,
  mftRecordOf,
  mftRecordOffset,
  mkntfs,
  ntfsinfoRuns,
  patchImage,
  pattern,
  peekImage,
  resolvePath,
  tempDir,
  withNtfs3g,
} from '../../../helpers/ntfs-images.js';

const CS = 4096;
const MiB = 1024 * 1024;
let dir: string;
let base: string;

async function withFs<T>(image: string, fn: (fs: GuestFileSystem & { notes: readonly string[] }) => Promise<T>): Promise<T> {
  const reader = new ImageReader(image);
  try {
    return await fn((await ntfsDriver.open(reader, { name: 'h' })) as NtfsFileSystem);
  } finally {
    reader.close();
  }
}

async function failure(p: Promise<unknown>, code = 'ERR_FORMAT_INVALID'): Promise<CairnError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(CairnError);
  expect((e as CairnError).code).toBe(code);
  return e as CairnError;
}

/** Patches bytes of MFT record `record` as stored; refuses the update-sequence slots at stride ends. */
function patchRecord(image: string, record: number, at: number, bytes: number[] | Buffer): void {
  for (let i = 0; i < bytes.length; i++) if ((at + i) % 512 >= 510) throw new Error(`byte ${at + i} is an update sequence slot`);
  // Offsets come from the undamaged base (ntfsinfo refuses damaged images; the layout is the same).
  patchImage(image, mftRecordOffset(base, record, CS) + at, bytes);
}
const recordBytes = (image: string, record: number): Buffer => peekImage(image, mftRecordOffset(base, record, CS), 1024);

/** ntfs-3g's view, read-only: the shell status of `cmd` run in the mount. */
async function ntfs3g(image: string, cmd: string): Promise<{ status: number | null; stderr: string }> {
  return withNtfs3g(image, ['ro'], (mnt) => {
    const r = spawnSync('sh', ['-c', cmd], { cwd: mnt, encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  });
}

beforeAll(async () => {
  dir = tempDir('ntfshostile');
  base = mkntfs(join(dir, 'base.img'), { size: 64 * MiB });
  await withNtfs3g(base, ['streams_interface=windows'], (mnt) => {
    writeFileSync(join(mnt, 'plain.txt'), 'plain\n');
    writeFileSync(join(mnt, 'zz-lone-surrogate-X'), 'an unpaired surrogate in the name\n');
    writeFileSync(join(mnt, 'big.bin'), pattern(300_000, 1));
    writeFileSync(join(mnt, 'secret.bin'), pattern(20_000, 2));
    mkdirSync(join(mnt, 'many'));
    for (let i = 0; i < 3000; i++) writeFileSync(join(mnt, 'many', `entry-${String(i).padStart(5, '0')}-${'n'.repeat(i % 40)}`), '');
    // Enough long names to spill into extension records, few enough for a resident attribute list.
    writeFileSync(join(mnt, 'linked'), 'many names\n');
    for (let i = 0; i < 8; i++)
      linkSync(join(mnt, 'linked'), join(mnt, `link-with-a-rather-long-name-to-fill-the-record-${'x'.repeat(40)}-${i}`));
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ntfs reader on odd but valid images', () => {
  it('lists a name with an unpaired surrogate as WTF-8 and looks it up by those bytes', async () => {
    // ntfs-3g cannot create such a name (it refuses invalid UTF-16 both ways), Windows can: change
    // the X of a name into U+D800 wherever the name is stored (its $FILE_NAME and the index key).
    const image = copyImage(base, 'lone.img');
    const bytes = readFileSync(image);
    const from = Buffer.from('zz-lone-surrogate-X', 'utf16le');
    let count = 0;
    for (let at = bytes.indexOf(from); at >= 0; at = bytes.indexOf(from, at + 1)) {
      const x = at + from.length - 2;
      expect(x % 512).toBeLessThan(510);
      patchImage(image, x, [0x00, 0xd8]);
      count++;
    }
    expect(count).toBeGreaterThanOrEqual(2);
    await withFs(image, async (fs) => {
      const wtf8 = Buffer.concat([Buffer.from('zz-lone-surrogate-'), Buffer.from([0xed, 0xa0, 0x80])]);
      const names: Buffer[] = [];
      for await (const e of fs.readdir(fs.rootId)) names.push(e.name);
      expect(names.some((n) => n.equals(wtf8))).toBe(true);
      const found = (await fs.lookup(fs.rootId, wtf8))!;
      expect((await fs.read(found.id, 0, 100)).toString()).toBe('an unpaired surrogate in the name\n');
      // The U+FFFD a lossy conversion would give names nothing.
      expect(await fs.lookup(fs.rootId, Buffer.from('zz-lone-surrogate-\ufffd'))).toBeUndefined();
    });
  });
});

describe('ntfs reader on damaged images', () => {
  it('names the MFT record whose update sequence does not match, and reads the rest', async () => {
    const image = copyImage(base, 'torn.img');
    const record = mftRecordOf(base, '/plain.txt');
    // The last two bytes of the record's second stride no longer carry the update sequence number.
    const at = mftRecordOffset(base, record, CS) + 1022;
    patchImage(image, at, [peekImage(image, at, 1)[0]! ^ 0xff, 0x42]);
    await withFs(image, async (fs) => {
      const id = (await resolvePath(fs, 'plain.txt'))!;
      const e = await failure(fs.stat(id));
      expect(e.message).toContain(`MFT record ${record}`);
      expect(e.message).toMatch(/update sequence mismatch/);
      expect((await fs.read((await resolvePath(fs, 'big.bin'))!, 0, 300_000)).equals(pattern(300_000, 1))).toBe(true);
    });
    // ntfs-3g agrees that the record is damaged.
    expect((await ntfs3g(image, 'cat plain.txt')).status).not.toBe(0);
  });

  it('uses the backup boot sector when the primary is wiped, and refuses when both are', async () => {
    const image = copyImage(base, 'noboot.img');
    patchImage(image, 0, Buffer.alloc(512));
    expect(await ntfsDriver.probe(new ImageReader(image))).toBe(true);
    await withFs(image, async (fs) => {
      expect(fs.notes.join(' ')).toMatch(/backup at byte/);
      expect((await fs.read((await resolvePath(fs, 'plain.txt'))!, 0, 100)).toString()).toBe('plain\n');
    });
    const size = readFileSync(image).length;
    patchImage(image, size - 512, Buffer.alloc(512));
    expect(await ntfsDriver.probe(new ImageReader(image))).toBe(false);
    const e = await failure(withFs(image, async () => undefined));
    expect(e.message).toContain('boot sector');
  });

  it('refuses to read an EFS-encrypted file, and only that file', async () => {
    const image = copyImage(base, 'efs.img');
    const record = mftRecordOf(base, '/secret.bin');
    const bytes = recordBytes(image, record);
    const data = attributeOffset(bytes, 0x80);
    patchRecord(image, record, data + 12, [0x00, 0x40]); // ATTR_IS_ENCRYPTED
    const si = attributeOffset(bytes, 0x10);
    const siValue = si + bytes.readUInt16LE(si + 20);
    const attrs = bytes.readUInt32LE(siValue + 32) | 0x4000;
    patchRecord(image, record, siValue + 32, [attrs & 0xff, (attrs >> 8) & 0xff, (attrs >> 16) & 0xff, attrs >>> 24]);
    await withFs(image, async (fs) => {
      const id = (await resolvePath(fs, 'secret.bin'))!;
      expect((await fs.stat(id)).attributes).toContain('encrypted');
      const e = await failure(fs.read(id, 0, 10), 'ERR_UNSUPPORTED');
      expect(e.message).toMatch(/encrypt/i);
      await failure(fs.extents(id, 0, 10), 'ERR_UNSUPPORTED');
      expect((await fs.read((await resolvePath(fs, 'plain.txt'))!, 0, 100)).toString()).toBe('plain\n');
    });
    // ntfs-3g refuses it too (EACCES), and reads the others.
    expect((await ntfs3g(image, 'cat secret.bin')).stderr).toMatch(/Permission denied/);
    expect((await ntfs3g(image, 'cat plain.txt')).status).toBe(0);
  });

  it('refuses an unknown NTFS version and notes a dirty volume', async () => {
    const image = copyImage(base, 'version.img');
    const bytes = recordBytes(image, 3);
    const info = attributeOffset(bytes, 0x70);
    const value = info + bytes.readUInt16LE(info + 20);
    patchRecord(image, 3, value + 8, [4, 0]);
    const e = await failure(
      withFs(image, async () => undefined),
      'ERR_UNSUPPORTED',
    );
    expect(e.message).toContain('version 4.0');
    patchRecord(image, 3, value + 8, [3, 1, bytes[value + 10]! | 1]);
    await withFs(image, async (fs) => {
      expect(fs.notes.join(' ')).toMatch(/dirty/);
      expect((await fs.read((await resolvePath(fs, 'plain.txt'))!, 0, 100)).toString()).toBe('plain\n');
    });
  });

  it('stops at an index block that points at itself instead of looping', async () => {
    const image = copyImage(base, 'loop.img');
    const runs = ntfsinfoRuns(base, { path: '/many' }, '$INDEX_ALLOCATION');
    let patched = false;
    // Find an index entry with a sub-node (an inner block) and point it at its own block.
    for (const [lcn, clusters] of runs) {
      for (let c = 0; c < clusters && !patched; c++) {
        const at = (lcn + c) * CS;
        const block = peekImage(image, at, CS);
        if (block.toString('latin1', 0, 4) !== 'INDX') continue;
        const vcn = block.readBigInt64LE(16);
        const header = 0x18;
        let e = header + block.readUInt32LE(header);
        const end = header + block.readUInt32LE(header + 4);
        while (e < end) {
          const length = block.readUInt16LE(e + 8);
          const flags = block.readUInt16LE(e + 12);
          const slot = e + length - 8;
          if (flags & 1 && ![0, 1, 2, 3, 4, 5, 6, 7].some((k) => (slot + k) % 512 >= 510)) {
            const v = Buffer.alloc(8);
            v.writeBigInt64LE(vcn);
            patchImage(image, at + slot, v);
            patched = true;
            break;
          }
          if (flags & 2 || length === 0) break;
          e += length;
        }
      }
    }
    expect(patched).toBe(true);
    await withFs(image, async (fs) => {
      const many = (await resolvePath(fs, 'many'))!;
      const names: Buffer[] = [];
      for await (const entry of fs.readdir(many)) names.push(entry.name);
      expect(names).toHaveLength(3000);
      let loops = 0;
      for (const name of names) {
        try {
          await fs.lookup(many, name);
        } catch (err) {
          expect(err).toBeInstanceOf(CairnError);
          expect((err as CairnError).message).toMatch(/twice|deeper/);
          loops++;
        }
      }
      expect(loops).toBeGreaterThan(0);
    });
  });

  it('refuses absurd sizes and runs outside the volume, naming the record', async () => {
    const image = copyImage(base, 'sizes.img');
    const record = mftRecordOf(base, '/big.bin');
    const bytes = recordBytes(image, record);
    const data = attributeOffset(bytes, 0x80);
    const huge = Buffer.alloc(8);
    huge.writeBigInt64LE(1n << 50n);
    patchRecord(image, record, data + 0x30, huge); // data_size beyond the allocation
    await withFs(image, async (fs) => {
      const e = await failure(fs.stat((await resolvePath(fs, 'big.bin'))!));
      expect(e.message).toContain(`MFT record ${record}`);
    });
    const image2 = copyImage(base, 'runs.img');
    // The first run's LCN: the byte after the header byte and the length bytes, made huge.
    const pairs = data + bytes.readUInt16LE(data + 0x20);
    const header = bytes[pairs]!;
    patchRecord(image2, record, pairs + 1 + (header & 0x0f) + ((header >> 4) - 1), [0x7f]);
    await withFs(image2, async (fs) => {
      const id = (await resolvePath(fs, 'big.bin'))!;
      const e = await failure(fs.read(id, 0, 100));
      expect(e.message).toMatch(/outside/);
    });
  });

  it('refuses an attribute list that names a record of another file', async () => {
    const image = copyImage(base, 'alist.img');
    const record = mftRecordOf(base, '/linked');
    const plain = mftRecordOf(base, '/plain.txt');
    const bytes = recordBytes(image, record);
    const list = attributeOffset(bytes, 0x20);
    // The list's value: in the record, or (past a few hundred bytes) in clusters of its own.
    const resident = bytes[list + 8] === 0;
    const [lcn] = resident ? [0] : ntfsinfoRuns(base, { path: '/linked' }, '$ATTRIBUTE_LIST')[0]!;
    const value = resident
      ? bytes.subarray(list + bytes.readUInt16LE(list + 20), list + bytes.readUInt16LE(list + 20) + bytes.readUInt32LE(list + 16))
      : peekImage(image, lcn * CS, CS);
    // Point the list's last entry at plain.txt's record (its sequence number kept).
    let at = 0;
    let last = 0;
    while (at + 26 <= value.length && value.readUInt16LE(at + 4) > 0) {
      last = at;
      at += value.readUInt16LE(at + 4);
    }
    const ref = Buffer.alloc(6);
    ref.writeUIntLE(plain, 0, 6);
    if (resident) patchRecord(image, record, list + bytes.readUInt16LE(list + 20) + last + 16, ref);
    else patchImage(image, lcn * CS + last + 16, ref);
    await withFs(image, async (fs) => {
      const e = await failure(fs.stat((await resolvePath(fs, 'linked'))!));
      expect(e.message).toContain(`MFT record ${record}`);
      expect(e.message).toMatch(/not an extension/);
    });
  });
});
