// Cairn's FAT reader against mtools (and 7-Zip, fsck.fat) over images that mkfs.fat and mtools make.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuestFileSystem } from '../../src/core/guest-filesystem.js';
import { openFileSystem, probeFileSystem } from '../../src/guest/fs/drivers.js';
import { fatDriver } from '../../src/guest/fs/fat/index.js';
import { FileBlockReader, makeTempDir } from '../helpers/disk-images.js';
import {
  fatToolEnv,
  makeFatImage,
  mattribTree,
  mdirTree,
  minfoGeometry,
  mshowfatRuns,
  MiB,
  patternBytes,
  tool,
  walkGuestFs,
  lookupPath,
  type FatImageSpec,
  type WalkedNode,
  type FatTree,
} from '../helpers/fat-images.js';

function treeFor(seed: number, bigSize: number, manyCount: number): FatTree {
  const tree: FatTree = {
    'hello.txt': Buffer.from(`hello from fixture ${seed}\n`),
    'Long File Name With Spaces.txt': patternBytes(5000, seed + 1),
    'Ünïcødé accents é à ç.txt': Buffer.from('accents\n'),
    '日本語のファイル名.txt': Buffer.from('cjk\n'),
    'lower.txt': Buffer.from('8.3 lower case\n'),
    noext: Buffer.from('no extension\n'),
    'UPPER.TXT': Buffer.from('upper\n'),
    'MixedCase.Txt': Buffer.from('mixed\n'),
    'empty.bin': Buffer.alloc(0),
    'big.bin': patternBytes(bigSize, seed + 2),
    'docs/readme.md': Buffer.from('# readme\n'.repeat(300)),
    'docs/zeros.bin': Buffer.alloc(70_000),
    'deep/a/b/c/d/e/f/g/h/leaf.txt': Buffer.from('leaf\n'),
    'deep/a/b/c/empty-dir': null,
    'attrs/readonly.txt': Buffer.from('ro\n'),
    'attrs/hidden.txt': Buffer.from('hidden\n'),
    'attrs/system.txt': Buffer.from('system\n'),
  };
  for (let i = 0; i < manyCount; i++) tree[`many/${String(i).padStart(4, '0')}-x long name ${i}.txt`] = Buffer.from(`${i}\n`);
  return tree;
}

const IMAGES: { label: string; spec: Omit<FatImageSpec, 'tree'>; bigSize: number; manyCount: number }[] = [
  { label: 'FAT12', spec: { fatBits: 12, size: 8 * MiB, volumeId: '12ab34cd', label: 'CAIRN12' }, bigSize: 1 * MiB + 123, manyCount: 300 },
  { label: 'FAT16', spec: { fatBits: 16, size: 96 * MiB, volumeId: '0000beef' }, bigSize: 24 * MiB + 5, manyCount: 3000 },
  {
    label: 'FAT32',
    spec: { fatBits: 32, size: 96 * MiB, sectorsPerCluster: 1, volumeId: 'deadbeef', label: 'ESP' },
    bigSize: 24 * MiB + 7,
    manyCount: 1500,
  },
];

const work = makeTempDir('guest-fat');
const env = fatToolEnv(work);

afterAll(() => rmSync(work, { recursive: true, force: true }));

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** mdir's "YYYY-MM-DD  H:MM" for an instant read as UTC. */
function mdirTime(ns: bigint): { date: string; time: string } {
  const d = new Date(Number(ns / 1_000_000n));
  return { date: d.toISOString().slice(0, 10), time: `${d.getUTCHours()}:${String(d.getUTCMinutes()).padStart(2, '0')}` };
}

describe.each(IMAGES)('$label image made by mkfs.fat and mtools', ({ label, spec, bigSize, manyCount }) => {
  const image = join(work, `${label}.img`);
  const tree = treeFor(spec.fatBits, bigSize, manyCount);
  let fs: GuestFileSystem;
  let nodes: Map<string, WalkedNode>;

  beforeAll(async () => {
    makeFatImage(env, image, { ...spec, tree, mtime: 1_577_934_244 }, work);
    tool(env, 'mattrib', ['-i', image, '+r', '::/attrs/readonly.txt']);
    tool(env, 'mattrib', ['-i', image, '+h', '::/attrs/hidden.txt']);
    tool(env, 'mattrib', ['-i', image, '+s', '-a', '::/attrs/system.txt']);
    const volume = new FileBlockReader(image);
    expect(await fatDriver.probe(volume)).toBe(true);
    expect(await probeFileSystem(volume)).toBe(fatDriver);
    fs = await openFileSystem(volume, { name: label });
    nodes = await walkGuestFs(fs);
  });

  it('is a clean volume by fsck.fat -n', () => {
    expect(() => tool(env, 'fsck.fat', ['-n', image])).not.toThrow();
  });

  it('has the type, serial number and label mtools shows', () => {
    const out = tool(env, 'mdir', ['-i', image, '::/']);
    expect(fs.type).toBe('vfat');
    expect(fs.uuid).toBe(/Volume Serial Number is (\S+)/.exec(out)?.[1]);
    const labelLine = /Volume in drive : (?:is (.*)|has no label)/.exec(out);
    expect(fs.label).toBe(labelLine?.[1]?.trimEnd());
  });

  it('lists every directory as mdir -/ does: names, sizes, modification minutes', () => {
    const listings = mdirTree(env, image);
    expect([...listings.keys()].sort()).toEqual(
      [...nodes.values()]
        .filter((n) => n.stat.type === 'dir')
        .map((n) => n.path)
        .sort(),
    );
    for (const [dirPath, entries] of listings) {
      const dir = nodes.get(dirPath);
      expect(dir?.names.slice().sort(), dirPath).toEqual(entries.map((e) => e.longName ?? e.shortName).sort());
      for (const e of entries) {
        const node = nodes.get(`${dirPath === '/' ? '' : dirPath}/${e.longName ?? e.shortName}`);
        expect(node, `${dirPath}/${e.shortName}`).toBeDefined();
        if (!node) continue;
        expect(node.stat.type).toBe(e.size === undefined ? 'dir' : 'file');
        if (e.size !== undefined) expect(node.stat.size).toBe(e.size);
        expect(mdirTime(node.stat.mtimeNs)).toEqual({ date: e.date, time: e.time });
      }
    }
    expect(listings.get('/many')?.length).toBe(manyCount);
  });

  it('finds each entry by its long name and by its 8.3 alias, in any case', async () => {
    const listings = mdirTree(env, image);
    for (const [dirPath, entries] of listings) {
      const dirId = dirPath === '/' ? fs.rootId : await lookupPath(fs, dirPath);
      // Every name of the small directories, a sample of the big one.
      for (const e of entries.length > 50 ? entries.filter((_, i) => i % 97 === 0) : entries) {
        const listed = e.longName ?? e.shortName;
        const byListed = await fs.lookup(dirId, Buffer.from(listed));
        expect(byListed?.name.toString(), `${dirPath}/${listed}`).toBe(listed);
        for (const alias of [e.shortName, e.shortName.toLowerCase(), listed.toUpperCase(), listed.toLowerCase()]) {
          const hit = await fs.lookup(dirId, Buffer.from(alias));
          expect(hit?.id, `${dirPath}: ${alias}`).toBe(byListed?.id);
        }
      }
      expect(await fs.lookup(dirId, Buffer.from('no such name.txt'))).toBeUndefined();
    }
  });

  it('reads every file with the content and modification second that mcopy -m extracts', async () => {
    const out = join(work, `${label}-out`);
    mkdirSync(out);
    tool(env, 'mcopy', ['-s', '-m', '-n', '-Q', '-i', image, '::/*', out + '/']);
    let files = 0;
    const hostWalk = (dir: string, rel: string): void => {
      for (const name of readdirSync(dir)) {
        const host = join(dir, name);
        const path = `${rel}/${name}`;
        const node = nodes.get(path);
        expect(node, path).toBeDefined();
        const st = statSync(host);
        expect(node?.stat.mtimeNs, path).toBe(BigInt(Math.round(st.mtimeMs)) * 1_000_000n);
        if (st.isDirectory()) hostWalk(host, path);
        else files++;
      }
    };
    hostWalk(out, '');
    expect(files).toBe(Object.values(tree).filter((v) => v !== null).length);
    for (const [path, node] of nodes) {
      if (node.stat.type !== 'file') continue;
      const expected = readFileSync(join(out, path));
      const got = await fs.read(node.stat.id, 0, node.stat.size + 10);
      expect(sha256(got), path).toBe(sha256(expected));
    }
    // Reads at odd offsets across cluster and run boundaries.
    const big = nodes.get('/big.bin');
    const bigBytes = tree['big.bin'] as Buffer;
    for (const [offset, length] of [
      [1, 4095],
      [511, 2],
      [bigSize - 10, 100],
      [bigSize, 1],
      [3 * 4096 - 1, 1_000_001],
    ] as const) {
      expect((await fs.read(big?.stat.id ?? 0n, offset, length)).equals(bigBytes.subarray(offset, offset + length))).toBe(true);
    }
    rmSync(out, { recursive: true, force: true });
  });

  it('shows the attributes mattrib shows, and modes that follow them', () => {
    const attrs = mattribTree(env, image);
    expect(attrs.size).toBe(nodes.size);
    for (const [path, names] of attrs) {
      const node = nodes.get(path);
      expect(node?.stat.attributes, path).toEqual(names);
      if (node?.stat.type === 'file') expect(node.stat.mode, path).toBe(names.includes('readonly') ? 0o444 : 0o644);
      else expect(node?.stat.mode, path).toBe(0o755);
    }
    expect(attrs.get('/attrs/readonly.txt')).toContain('readonly');
    expect(attrs.get('/attrs/system.txt')).toEqual(['system']);
  });

  it('maps file extents onto the clusters mshowfat reports', async () => {
    const { dataOffset, clusterSize } = minfoGeometry(env, image);
    for (const path of ['/big.bin', '/hello.txt', '/docs/zeros.bin', '/Long File Name With Spaces.txt', '/empty.bin']) {
      const node = nodes.get(path);
      if (!node) throw new Error(`no ${path}`);
      const extents = await fs.extents(node.stat.id, 0, node.stat.size);
      const runs = extents.map((e): [number, number] => {
        const range = e.volumeRanges?.[0];
        expect(e.kind).toBe('data');
        const first = 2 + ((range?.offset ?? 0) - dataOffset) / clusterSize;
        return [first, first + Math.ceil(e.length / clusterSize) - 1];
      });
      expect(runs, path).toEqual(node.stat.size === 0 ? [] : mshowfatRuns(env, image, path));
      expect(extents.reduce((sum, e) => sum + e.length, 0)).toBe(node.stat.size);
    }
  });
});
