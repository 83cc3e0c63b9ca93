import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  openSync,
  closeSync,
  readdirSync,
  readSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/store/repository.js';
import { makeTempDir } from '../helpers/cairn-cli.js';
import { backupImage, expectBackupRefused, fileDigest, KiB, MiB, pointDigest, qemuRawDigest, sh } from '../helpers/image-backup.js';
import { writeVhd, type VhdBlockSpec } from '../helpers/vhd-writer.js';

// VHDs made by qemu-img (dynamic, fixed) and by the tests' own writer laid out as Xen Orchestra
// writes them (dynamic fulls, differencing deltas). The oracle is qemu-img for what it reads and
// libvhdi's vhdimount for differencing chains, never Cairn's own parser.
const BLOCK = 2 * MiB;
const SIZE = 10 * MiB + 64 * KiB;

let dir: { path: string; cleanup: () => Promise<void> };
let counter = 0;
const path = (name: string) => join(dir.path, name);
const freshRepo = () => Repository.init(path(`repo-${counter++}`), MiB);

/** What libvhdi reads for `image` (the top of its chain, flattened): vhdimount's last vhdiN file. */
async function vhdimountDigest(image: string): Promise<{ sha256: string; size: number }> {
  const mount = path(`mnt-${counter++}`);
  mkdirSync(mount);
  sh('vhdimount', [image, mount]);
  try {
    const files = readdirSync(mount).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
    return await fileDigest(join(mount, files[files.length - 1]!));
  } finally {
    sh('umount', [mount]);
  }
}

function vhdiinfo(image: string): string {
  return sh('vhdiinfo', [image]);
}

/** A digest of bytes the test itself assembled (for what the fixtures' own inputs say). */
async function bufferDigest(data: Buffer): Promise<{ sha256: string; size: number }> {
  const file = path(`expected-${counter++}.raw`);
  writeFileSync(file, data);
  return fileDigest(file);
}

async function expectRefused(
  image: string,
  code: string,
  pattern: RegExp,
  { repo, vm = 'vm', ...options }: Parameters<typeof backupImage>[3] & { repo?: Repository; vm?: string } = {},
) {
  await expectBackupRefused(repo ?? (await freshRepo()), vm, image, code, pattern, options);
}

function flip(file: string, offset: number): void {
  const fd = openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, offset);
  byte[0] = byte[0]! ^ 0x40;
  writeSync(fd, byte, 0, 1, offset);
  closeSync(fd);
}

/** The full disk the XO-style chain starts from, and what each delta changes (whole blocks, as XO writes them). */
let fullData: Buffer;
let fullUuid: Buffer;

beforeAll(async () => {
  dir = await makeTempDir('cairn-vhd-');
  fullData = Buffer.alloc(SIZE);
  randomBytes(BLOCK).copy(fullData, 0);
  Buffer.from('xen orchestra full backup\n'.repeat(90_000)).copy(fullData, 2 * BLOCK, 0, BLOCK);
  randomBytes(64 * KiB).copy(fullData, 5 * BLOCK);
  const blocks: VhdBlockSpec[] = [0, 2, 5].map((index) => ({ index, data: blockOf(fullData, index) }));
  fullUuid = writeVhd(path('full.vhd'), { size: SIZE, blocks });
});

afterAll(() => dir.cleanup());

/** Block `index` of `data` padded to a whole block. */
function blockOf(data: Buffer, index: number): Buffer {
  const block = Buffer.alloc(BLOCK);
  data.copy(block, 0, index * BLOCK, Math.min(data.length, (index + 1) * BLOCK));
  return block;
}

describe('VHD made by qemu-img', () => {
  let raw: string;
  beforeAll(() => {
    raw = path('sample.raw');
    writeFileSync(raw, fullData);
  });

  for (const subformat of ['dynamic', 'fixed']) {
    it(`${subformat} (-O vpc -o subformat=${subformat})`, async () => {
      const image = path(`qemu-${subformat}.vhd`);
      sh('qemu-img', ['convert', '-O', 'vpc', '-o', `subformat=${subformat}`, raw, image]);
      const repo = await freshRepo();
      const result = await backupImage(repo, 'vm', image);
      const expected = await qemuRawDigest(image, dir.path, 'vpc');
      expect(await pointDigest(repo, 'vm', result.point, 'd')).toEqual(expected);
      expect(vhdiinfo(image)).toMatch(new RegExp(`Media size\\s*:.*\\(${expected.size} bytes\\)`));
      expect(result.origin?.description).toMatch(new RegExp(`VHD ${subformat} \\(creator 'qemu'`));
    });
  }
});

describe('Xen Orchestra-style VHD fulls and differencing deltas', () => {
  it('a dynamic full reads as libvhdi reads it', async () => {
    expect(vhdiinfo(path('full.vhd'))).toMatch(/Disk type\s*:\s*Dynamic/);
    const repo = await freshRepo();
    const result = await backupImage(repo, 'vm', path('full.vhd'));
    const expected = await vhdimountDigest(path('full.vhd'));
    expect(expected).toEqual(await bufferDigest(fullData));
    expect(await pointDigest(repo, 'vm', result.point, 'd')).toEqual(expected);
  });

  it('a delta (whole blocks) flattens with its parent and applies onto the base point with --base', async () => {
    const delta = Buffer.from(fullData);
    randomBytes(BLOCK).copy(delta, BLOCK);
    delta.fill(0, 2 * BLOCK, 3 * BLOCK);
    writeVhd(path('delta-1.vhd'), {
      size: SIZE,
      parent: { uuid: fullUuid, name: 'full.vhd' },
      blocks: [1, 2].map((index) => ({ index, data: blockOf(delta, index) })),
    });
    expect(vhdiinfo(path('delta-1.vhd'))).toMatch(/Disk type\s*:\s*Differential[\s\S]*Parent filename\s*:\s*full\.vhd/);
    const expected = await vhdimountDigest(path('delta-1.vhd'));
    expect(expected).toEqual(await bufferDigest(delta));
    // No base: the chain is read as one disk.
    const flat = await freshRepo();
    const whole = await backupImage(flat, 'vm', path('delta-1.vhd'));
    expect(await pointDigest(flat, 'vm', whole.point, 'd')).toEqual(expected);
    // With a base: only the delta's blocks are read.
    const repo = await freshRepo();
    await backupImage(repo, 'xo', path('full.vhd'));
    const inc = await backupImage(repo, 'xo', path('delta-1.vhd'), { base: 'latest' });
    expect(await pointDigest(repo, 'xo', inc.point, 'd')).toEqual(expected);
    expect(inc.bytesRead).toBeLessThan(2 * BLOCK + 64 * KiB);
    expect(inc.origin?.parent).toMatch(new RegExp(`^full\\.vhd \\{${fullUuid.toString('hex')}\\}$`));
    // A delta of another parent is refused onto this base, naming both ids.
    writeVhd(path('foreign-delta.vhd'), { size: SIZE, parent: { uuid: Buffer.alloc(16, 0xab), name: 'elsewhere.vhd' }, blocks: [] });
    await expectRefused(
      path('foreign-delta.vhd'),
      'ERR_INVALID_ARGUMENT',
      /parent abab.*but base point \d+T\d+Z was made from VHD [0-9a-f]{32}/,
      {
        repo,
        vm: 'xo',
        base: 'latest',
      },
    );
  });

  it('partial sector bitmaps, parent locators, a chain of three', async () => {
    // Unmarked sectors of the children hold the parent's bytes too, so every reader agrees on the
    // flattened disk (libvhdi rounds bitmap runs up; see the next test for the bitmap itself).
    const mid = Buffer.from(fullData);
    const midBlocks: VhdBlockSpec[] = [0, 4].map((index) => {
      const data = blockOf(mid, index);
      const marked = (s: number) => s % 8 < 4 || s > 4000;
      for (let s = 0; s < BLOCK / 512; s++) if (marked(s)) data.fill(0x30 + (s % 7), s * 512, (s + 1) * 512);
      data.copy(mid, index * BLOCK, 0, Math.min(BLOCK, SIZE - index * BLOCK));
      return { index, data, marked };
    });
    const midUuid = writeVhd(path('chain-1.vhd'), {
      size: SIZE,
      parent: {
        uuid: fullUuid,
        name: 'full.vhd',
        locators: [
          { code: 'W2ru', path: '.\\full.vhd' },
          { code: 'W2ku', path: 'C:\\vms\\full.vhd' },
          { code: 'MacX', path: `file://localhost${path('full.vhd')}` },
        ],
      },
      blocks: midBlocks,
    });
    const top = Buffer.from(mid);
    const topBlock = blockOf(top, 5);
    topBlock.fill(0x77, 0, 512 * 3);
    topBlock.copy(top, 5 * BLOCK, 0, SIZE - 5 * BLOCK);
    writeVhd(path('chain-2.vhd'), {
      size: SIZE,
      parent: { uuid: midUuid, name: 'chain-1.vhd', locators: [{ code: 'W2ru', path: '.\\chain-1.vhd' }] },
      blocks: [{ index: 5, data: topBlock, marked: (s) => s < 3 }],
    });
    const expected = await vhdimountDigest(path('chain-2.vhd'));
    expect(expected).toEqual(await bufferDigest(top));
    const repo = await freshRepo();
    const flat = await backupImage(repo, 'vm', path('chain-2.vhd'));
    expect(await pointDigest(repo, 'vm', flat.point, 'd')).toEqual(expected);
    const one = await backupImage(await freshRepo(), 'vm', path('chain-1.vhd'));
    expect(one.origin?.parentLocators).toEqual(['W2ru .\\full.vhd', 'W2ku C:\\vms\\full.vhd', `MacX file://localhost${path('full.vhd')}`]);
    // Incrementals along the chain: full, then each child with --base.
    const inc = await freshRepo();
    await backupImage(inc, 'c', path('full.vhd'));
    const p1 = await backupImage(inc, 'c', path('chain-1.vhd'), { base: 'latest' });
    expect(await pointDigest(inc, 'c', p1.point, 'd')).toEqual(await vhdimountDigest(path('chain-1.vhd')));
    const p2 = await backupImage(inc, 'c', path('chain-2.vhd'), { base: 'latest' });
    expect(await pointDigest(inc, 'c', p2.point, 'd')).toEqual(expected);
    expect(p2.bytesRead).toBeLessThan(64 * KiB);
  });

  it('unmarked sectors come from the parent, whatever the child block holds there', async () => {
    const child = Buffer.from(fullData);
    const data = Buffer.alloc(BLOCK, 0xee);
    const marked = (s: number) => s === 100 || (s >= 2000 && s < 2100);
    for (let s = 0; s < BLOCK / 512; s++) if (marked(s)) data.copy(child, 2 * BLOCK + s * 512, s * 512, (s + 1) * 512);
    writeVhd(path('garbage.vhd'), { size: SIZE, parent: { uuid: fullUuid, name: 'full.vhd' }, blocks: [{ index: 2, data, marked }] });
    const expected = await bufferDigest(child);
    const repo = await freshRepo();
    const flat = await backupImage(repo, 'vm', path('garbage.vhd'));
    expect(await pointDigest(repo, 'vm', flat.point, 'd')).toEqual(expected);
    await backupImage(repo, 'inc', path('full.vhd'));
    const inc = await backupImage(repo, 'inc', path('garbage.vhd'), { base: 'latest' });
    expect(await pointDigest(repo, 'inc', inc.point, 'd')).toEqual(expected);
  });
});

describe('VHD damage and refusals', () => {
  const copy = (name: string, from = 'full.vhd') => {
    copyFileSync(path(from), path(name));
    return path(name);
  };

  it('a flipped footer or header byte fails its checksum', async () => {
    const footer = copy('bad-footer.vhd');
    flip(footer, 50);
    await expectRefused(footer, 'ERR_FORMAT_INVALID', /footer checksum/);
    const header = copy('bad-header.vhd');
    flip(header, 512 + 30);
    await expectRefused(header, 'ERR_FORMAT_INVALID', /dynamic header checksum/);
  });

  it('a truncated file fails cleanly and leaves no point', async () => {
    const cut = copy('truncated.vhd');
    truncateSync(cut, Math.floor(statSync(cut).size / 2));
    await expectRefused(cut, 'ERR_FORMAT_INVALID', /outside the \d+-byte file/);
  });

  it('a BAT entry past the end of the file fails cleanly', async () => {
    const bad = copy('bat-past-end.vhd');
    const fd = openSync(bad, 'r+');
    writeSync(fd, Buffer.from([0x7f, 0, 0, 0]), 0, 4, 1536);
    closeSync(fd);
    await expectRefused(bad, 'ERR_FORMAT_INVALID', /VHD (sector bitmap|data block) .* outside/);
  });

  it('a parent whose id does not match, or that is missing, is refused with both named', async () => {
    writeVhd(path('wrong-parent.vhd'), { size: SIZE, parent: { uuid: randomBytes(16), name: 'full.vhd' }, blocks: [] });
    await expectRefused(
      path('wrong-parent.vhd'),
      'ERR_FORMAT_INVALID',
      /is not the parent of .*wrong-parent\.vhd \(its id is [0-9a-f]{32}/,
    );
    writeVhd(path('orphan.vhd'), { size: SIZE, parent: { uuid: fullUuid, name: 'gone.vhd' }, blocks: [] });
    await expectRefused(path('orphan.vhd'), 'ERR_SOURCE', /parent of .*orphan\.vhd \('gone\.vhd'\) is not found/);
  });
});
