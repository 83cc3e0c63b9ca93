// The EFI system partition of a UEFI guest (FAT32 in a GPT partition of type EF00, made with sgdisk,
// mkfs.fat and mtools) read through the partition table and the driver probe, and the name and time
// fields mtools cannot write (supplementary characters, unpaired surrogates, the creation time's
// 10 ms field), patched into mtools-made entries and checked against 7-Zip's FAT reader.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuestFileSystem } from '../../src/core/guest-filesystem.js';
import { openFileSystem, probeFileSystem } from '../../src/guest/fs/drivers.js';
import { fatDriver } from '../../src/guest/fs/fat/index.js';
import { PartitionReader } from '../../src/guest/partition-reader.js';
import { findPartition, readPartitionTable } from '../../src/guest/partition-table.js';
import { FileBlockReader, makeSparseFile, makeTempDir, placeImage, writeAt } from '../helpers/disk-images.js';
import {
  fatToolEnv,
  minfoGeometry,
  makeFatImage,
  mdirTree,
  MiB,
  patternBytes,
  sevenZipTree,
  tool,
  walkGuestFs,
  type FatTree,
} from '../helpers/fat-images.js';

const work = makeTempDir('guest-fat-esp');
const env = fatToolEnv(work);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';

describe('an EFI system partition on a GPT disk', () => {
  const disk = join(work, 'uefi-guest.img');
  const tree: FatTree = {
    'EFI/BOOT/BOOTX64.EFI': patternBytes(900_000, 1),
    'EFI/debian/shimx64.efi': patternBytes(950_000, 2),
    'EFI/debian/grubx64.efi': patternBytes(2_500_000, 3),
    'EFI/debian/grub.cfg': Buffer.from("search.fs_uuid 1234 root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n"),
    'EFI/Microsoft/Boot/bootmgfw.efi': patternBytes(1_500_000, 4),
    'EFI/Microsoft/Boot/BCD': patternBytes(28_672, 5),
    'EFI/Microsoft/Boot/en-US/bootmgfw.efi.mui': patternBytes(80_000, 6),
    'startup.nsh': Buffer.from('FS0:\\EFI\\BOOT\\BOOTX64.EFI\n'),
  };
  let fs: GuestFileSystem;
  let partitionOffset: number;

  beforeAll(async () => {
    makeSparseFile(disk, 120 * MiB);
    tool(env, 'sgdisk', ['-o', '-n', '1:2048:+100M', '-t', '1:EF00', '-c', '1:EFI system partition', '-n', '2:0:0', '-t', '2:8300', disk]);
    const esp = join(work, 'esp.img');
    makeFatImage(env, esp, { fatBits: 32, size: 100 * MiB, volumeId: 'a1b2c3d4', label: 'ESP', tree }, work);
    placeImage(disk, 2048 * 512, esp);
    const reader = new FileBlockReader(disk);
    const table = await readPartitionTable(reader);
    const entry = findPartition(table, 1);
    expect(entry.type).toBe(ESP_TYPE);
    partitionOffset = entry.offset;
    const volume = new PartitionReader(reader, entry.offset, entry.length);
    expect(await probeFileSystem(volume)).toBe(fatDriver);
    // The Linux partition holds no filesystem: no driver claims it.
    const p2 = findPartition(table, 2);
    expect(await probeFileSystem(new PartitionReader(reader, p2.offset, p2.length))).toBeUndefined();
    fs = await openFileSystem(volume, { name: 'uefi-guest/p1' });
  });

  it('lists, stats and reads the partition as mtools does through the disk at its offset', async () => {
    const image = `${disk}@@${partitionOffset}`;
    expect(fs.label).toBe('ESP');
    expect(fs.uuid).toBe('A1B2-C3D4');
    const nodes = await walkGuestFs(fs);
    const listings = mdirTree(env, image);
    for (const [dirPath, entries] of listings) {
      expect(nodes.get(dirPath)?.names.slice().sort(), dirPath).toEqual(entries.map((e) => e.longName ?? e.shortName).sort());
    }
    const out = join(work, 'esp-out');
    mkdirSync(out);
    tool(env, 'mcopy', ['-s', '-m', '-n', '-Q', '-i', image, '::/*', out + '/']);
    const check = async (dir: string, rel: string): Promise<void> => {
      for (const name of readdirSync(dir)) {
        const host = join(dir, name);
        const node = nodes.get(`${rel}/${name}`);
        const st = statSync(host);
        expect(node?.stat.mtimeNs).toBe(BigInt(Math.round(st.mtimeMs)) * 1_000_000n);
        if (st.isDirectory()) await check(host, `${rel}/${name}`);
        else {
          const data = await fs.read(node?.stat.id ?? 0n, 0, st.size);
          expect(createHash('sha256').update(data).digest('hex'), `${rel}/${name}`).toBe(
            createHash('sha256').update(readFileSync(host)).digest('hex'),
          );
        }
      }
    };
    await check(out, '');
    expect(nodes.get('/EFI/BOOT/BOOTX64.EFI')?.stat.size).toBe(900_000);
  });
});

/** The offset of `needle` in the file, which must occur exactly once. */
function uniqueOffset(path: string, needle: Buffer): number {
  const bytes = readFileSync(path);
  const at = bytes.indexOf(needle);
  if (at < 0 || bytes.indexOf(needle, at + 1) >= 0) throw new Error(`${needle.toString('hex')} is not in ${path} exactly once`);
  return at;
}

/** 7-Zip's "2020-01-02 03:04:05.57" (UTC here) as nanoseconds. */
function sevenZipNs(text: string | undefined): bigint {
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?$/.exec(text ?? '');
  if (!m) throw new Error(`unexpected 7-Zip time ${text}`);
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  const fraction = (m[7] ?? '').padEnd(9, '0').slice(0, 9);
  return BigInt(ms) * 1_000_000n + BigInt(fraction);
}

describe('names and times beyond what mtools writes', () => {
  const image = join(work, 'patched.img');
  let fs: GuestFileSystem;

  beforeAll(async () => {
    // U+2370 and U+2371 stand in for the two units of U+1F600, U+2372 for a lone high surrogate.
    makeFatImage(
      env,
      image,
      {
        fatBits: 16,
        size: 16 * MiB,
        sectorsPerCluster: 1,
        volumeId: '00c0ffee',
        tree: {
          '\u2370\u2371 smile.txt': Buffer.from('emoji\n'),
          '\u2372 lone.txt': Buffer.from('lone\n'),
          'tenms.txt': Buffer.from('t\n'),
        },
        mtime: 1_577_934_244,
      },
      work,
    );
    writeAt(image, uniqueOffset(image, Buffer.from('\u2370\u2371', 'utf16le')), Buffer.from([0x3d, 0xd8, 0x00, 0xde]));
    writeAt(image, uniqueOffset(image, Buffer.from('\u2372', 'utf16le')), Buffer.from([0x00, 0xd8]));
    // 'tenms.txt' has only an 8.3 entry (NT lower-case bits): give it a creation time 1.57 s past an
    // even second, and an access date of its own.
    const entry = uniqueOffset(image, Buffer.from('TENMS   TXT', 'latin1'));
    const patch = Buffer.alloc(7);
    patch[0] = 157; // DIR_CrtTimeTenth
    patch.writeUInt16LE((10 << 11) | (20 << 5) | 15, 1); // DIR_CrtTime 10:20:30
    patch.writeUInt16LE(((2019 - 1980) << 9) | (7 << 5) | 14, 3); // DIR_CrtDate 2019-07-14
    patch.writeUInt16LE(((2021 - 1980) << 9) | (2 << 5) | 28, 5); // DIR_LstAccDate 2021-02-28
    writeAt(image, entry + 13, patch);
    fs = await fatDriver.open(new FileBlockReader(image), { name: 'patched' });
  });

  it('lists a supplementary character as UTF-8, as 7-Zip reads it, and finds it by that name', async () => {
    const names: Buffer[] = [];
    for await (const entry of fs.readdir(fs.rootId)) names.push(entry.name);
    const seven = sevenZipTree(env, image);
    const smile = [...seven.keys()].find((path) => path.endsWith(' smile.txt'));
    expect(smile).toBe('\u{1F600} smile.txt');
    expect(names.map((n) => n.toString('utf8'))).toContain(smile);
    const hit = await fs.lookup(fs.rootId, Buffer.from('\u{1F600} SMILE.TXT'));
    expect(hit?.name.toString('utf8')).toBe('\u{1F600} smile.txt');
    expect((await fs.read(hit?.id ?? 0n, 0, 100)).toString()).toBe('emoji\n');
  });

  it('lists an unpaired surrogate as its 3-byte WTF-8 form, reversibly', async () => {
    const wtf8 = Buffer.concat([Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(' lone.txt')]);
    const names: Buffer[] = [];
    for await (const entry of fs.readdir(fs.rootId)) names.push(entry.name);
    expect(names.some((n) => n.equals(wtf8))).toBe(true);
    const hit = await fs.lookup(fs.rootId, wtf8);
    expect((await fs.read(hit?.id ?? 0n, 0, 100)).toString()).toBe('lone\n');
    // The lossy UTF-8 rendering is another name.
    expect(await fs.lookup(fs.rootId, Buffer.from('\uFFFD lone.txt'))).toBeUndefined();
  });

  it('has the modification, access and creation times (with its 10 ms field) that 7-Zip reads', async () => {
    const seven = sevenZipTree(env, image);
    let compared = 0;
    for await (const entry of fs.readdir(fs.rootId)) {
      const name = entry.name.toString('utf8');
      const props = seven.get(name);
      // 7-Zip cannot name the unpaired surrogate in UTF-8; the other two entries are compared.
      if (!props) continue;
      compared++;
      const st = await fs.stat(entry.id);
      expect(st.mtimeNs, name).toBe(sevenZipNs(props.Modified));
      expect(st.atimeNs, name).toBe(sevenZipNs(props.Accessed));
      expect(st.birthtimeNs, name).toBe(sevenZipNs(props.Created));
    }
    expect(compared).toBeGreaterThanOrEqual(2);
    const tenms = await fs.lookup(fs.rootId, Buffer.from('tenms.txt'));
    const st = await fs.stat(tenms?.id ?? 0n);
    expect(st.birthtimeNs).toBe(sevenZipNs(seven.get('tenms.txt')?.Created));
    expect(new Date(Number((st.birthtimeNs ?? 0n) / 1_000_000n)).toISOString()).toBe('2019-07-14T10:20:31.570Z');
    expect(
      mdirTree(env, image)
        .get('/')
        ?.find((e) => e.shortName === 'tenms.txt'),
    ).toBeDefined();
  });
});

describe('a FAT32 volume with FAT mirroring off', () => {
  it('follows the active FAT that BPB_ExtFlags names, as mtools does, not the damaged first one', async () => {
    const image = join(work, 'active-fat.img');
    const content = patternBytes(300_000, 9);
    makeFatImage(
      env,
      image,
      { fatBits: 32, size: 40 * MiB, sectorsPerCluster: 1, volumeId: '0fa70fa7', tree: { 'data.bin': content } },
      work,
    );
    const { fatOffset } = minfoGeometry(env, image);
    // Zero FAT 0 from cluster 2 on, then say "no mirroring, FAT 1 is active" (bit 7 | 1).
    writeAt(image, fatOffset + 8, Buffer.alloc(8192));
    writeAt(image, 40, Buffer.from([0x81, 0x00]));
    const out = join(work, 'active-fat.out');
    tool(env, 'mcopy', ['-n', '-i', image, '::/data.bin', out]);
    expect(readFileSync(out).equals(content)).toBe(true);
    const fs = await fatDriver.open(new FileBlockReader(image), { name: 'active-fat' });
    const hit = await fs.lookup(fs.rootId, Buffer.from('data.bin'));
    expect((await fs.read(hit?.id ?? 0n, 0, content.length)).equals(content)).toBe(true);
    // The same image with mirroring on reads FAT 0, whose chain is gone.
    writeAt(image, 40, Buffer.from([0x00, 0x00]));
    const mirrored = await fatDriver.open(new FileBlockReader(image), { name: 'mirrored' });
    await expect(mirrored.read(hit?.id ?? 0n, 0, 10)).rejects.toMatchObject({ code: 'ERR_FORMAT_INVALID' });
  });
});
