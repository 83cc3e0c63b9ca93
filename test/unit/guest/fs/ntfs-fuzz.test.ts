// Fuzzing the NTFS reader: deterministic small images (mkntfs -T, then filled through ntfs-3g with
// its clock frozen by faketime, so the same steps give the same bytes), a few hundred copies each
// with random bytes written over the metadata (boot sector, MFT records with their attributes and
// runlists, index blocks, compressed clusters), each walked completely. Every walk must end in a
// listing or a CairnError: any other exception, a hang past the deadline or runaway memory fails.
// Seeds that ever failed stay in test/fixtures/ntfs-fuzz-regressions.json.
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ntfsDriver } from '../../../../src/guest/fs/ntfs/index.js';
import {
  FILE_ATTRIBUTES,
  FROZEN_TIME,
  mftRecordOf,
  mftRecordOffset,
  mkntfs,
  ntfsinfoRuns,
  pattern,
  reparseBuffer,
  setAttributes,
  setReparse,
  tempDir,
  withNtfs3g,
} from '../../../helpers/ntfs-images.js';
import { mutationsFor, runFuzzCase, walkAll, type FuzzBase, type FuzzRegression } from '../../../helpers/guest-fs-fuzz.js';

const CASES_PER_IMAGE = Number(process.env.CAIRN_FUZZ_CASES ?? 150);
const DEADLINE_MS = 3000;
const MAX_NODES = 2000;
const MAX_FILE_BYTES = 1024 * 1024;
const MiB = 1024 * 1024;

const REGRESSIONS: FuzzRegression[] = JSON.parse(
  readFileSync(new URL('../../../fixtures/ntfs-fuzz-regressions.json', import.meta.url), 'utf8'),
) as FuzzRegression[];

function runCase(base: FuzzBase, mutations: readonly [number, number][]): Promise<'listed' | 'error'> {
  return runFuzzCase(base, mutations, DEADLINE_MS, async (volume) => {
    const fs = await ntfsDriver.open(volume, { name: 'fuzz', metadataCacheBytes: 2 * MiB });
    return walkAll(fs, { maxNodes: MAX_NODES, maxFileBytes: MAX_FILE_BYTES, lookupSuffixes: [':stream'] });
  });
}

let dir: string;
const bases: FuzzBase[] = [];

/** Fills a small tree (every structure the reader parses) through ntfs-3g with a frozen clock. */
function fillSmallTree(root: string): string[] {
  const paths: string[] = ['/', '/sub', '/sub/deeper', '/wide', '/packed'];
  mkdirSync(join(root, 'sub', 'deeper'), { recursive: true });
  mkdirSync(join(root, 'wide'));
  const file = (rel: string, data: Buffer | string): void => {
    writeFileSync(join(root, rel), data);
    paths.push(`/${rel}`);
  };
  file('small.txt', 'small\n');
  file('resident', pattern(300, 1));
  file('sub/medium.bin', pattern(40_000, 2));
  file('sub/deeper/big.bin', pattern(300_000, 3));
  file('small.txt:stream', 'a stream\n');
  for (let i = 0; i < 150; i++) file(`wide/entry-${i}-${'w'.repeat(i % 30)}`, i % 10 === 0 ? pattern(i * 10, i) : '');
  mkdirSync(join(root, 'packed'));
  setAttributes(join(root, 'packed'), FILE_ATTRIBUTES.COMPRESSED);
  file('packed/text.txt', 'compressible text, repeated. '.repeat(5000));
  symlinkSync('small.txt', join(root, 'interix-link'));
  mkdirSync(join(root, 'junction'));
  setReparse(join(root, 'junction'), reparseBuffer('junction', '\\??\\C:\\sub\\deeper'));
  writeFileSync(join(root, 'win-link'), '');
  setReparse(join(root, 'win-link'), reparseBuffer('relative-symlink', 'sub\\MEDIUM.bin'));
  paths.push('/interix-link', '/junction', '/win-link');
  for (let i = 0; i < 12; i++) writeFileSync(join(root, 'sub', `link-with-a-long-name-to-spill-the-record-${i}`), '');
  return paths;
}

async function buildBase(name: string, clusterSize: number): Promise<FuzzBase> {
  const image = mkntfs(join(dir, `${name}.img`), { size: 8 * MiB, clusterSize });
  const paths = await withNtfs3g(image, ['streams_interface=windows'], (mnt) => fillSmallTree(mnt), FROZEN_TIME);
  const ranges: [number, number][] = [[0, 512]];
  // The MFT records in use (the first 100 hold every file of the tree).
  const firstMft = mftRecordOffset(image, 0, clusterSize);
  ranges.push([firstMft, 100 * 1024]);
  // Every directory's index blocks and the compressed file's stored clusters.
  for (const p of paths) {
    for (const [lcn, clusters] of ntfsinfoRuns(image, { path: p }, '$INDEX_ALLOCATION'))
      ranges.push([lcn * clusterSize, clusters * clusterSize]);
  }
  for (const [lcn, clusters] of ntfsinfoRuns(image, { path: '/packed/text.txt' }, '$DATA'))
    ranges.push([lcn * clusterSize, clusters * clusterSize]);
  expect(mftRecordOf(image, '/small.txt')).toBeLessThan(100);
  return { name, bytes: readFileSync(image), metadata: ranges };
}

beforeAll(async () => {
  dir = tempDir('ntfsfuzz');
  bases.push(await buildBase('ntfs-4k', 4096));
  bases.push(await buildBase('ntfs-512', 512));
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ntfs reader fuzz', () => {
  it('builds the same base images every time (so that seeds replay)', async () => {
    const again = await buildBase('ntfs-4k-again', 4096);
    expect(again.bytes.equals(bases[0]!.bytes)).toBe(true);
  }, 30_000);

  it('walks each undamaged base image completely', async () => {
    for (const base of bases) expect(await runCase(base, [])).toBe('listed');
  });

  it('replays every seed that ever failed', async () => {
    for (const r of REGRESSIONS) {
      const base = bases.find((b) => b.name === r.image)!;
      await runCase(base, r.mutations ?? mutationsFor(base, r.seed));
    }
  });

  it(
    `survives ${CASES_PER_IMAGE} mutated copies of each image`,
    async () => {
      const outcomes = { listed: 0, error: 0 };
      const heapBefore = process.memoryUsage().heapUsed;
      for (const base of bases) {
        for (let seed = 1; seed <= CASES_PER_IMAGE; seed++) outcomes[await runCase(base, mutationsFor(base, seed))]++;
      }
      if (process.env.CAIRN_FUZZ_VERBOSE) console.log(outcomes);
      // Both outcomes must occur, or the mutations are not reaching anything the reader checks.
      expect(outcomes.listed).toBeGreaterThan(0);
      expect(outcomes.error).toBeGreaterThan(0);
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(512 * 1024 * 1024);
    },
    120_000 + CASES_PER_IMAGE * 400,
  );
});
