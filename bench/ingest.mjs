// Ingest benchmark (issue: repository and chunk store). In one run, on the same generated image:
//   cairn backup (full), cairn backup --base latest --changed-blocks (1 % of 64 KiB blocks changed),
//   restic backup of the same file, twice (the second after the same change).
// Prints medians over --runs runs, throughput, ratios, repository sizes and peak RSS.
// Usage: npm run build && node bench/ingest.mjs [--size-gib 2] [--runs 3] [--chunk-size 1MiB]
import { mkdtemp, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { changeBlocks, makeBaseImage } from './lib/make-image.mjs';
import { duBytes, fmtMiB, fmtMiBs, median, MiB, timed } from './lib/measure.mjs';

const { values } = parseArgs({
  options: {
    'size-gib': { type: 'string', default: '2' },
    runs: { type: 'string', default: '3' },
    'chunk-size': { type: 'string', default: '1MiB' },
  },
});
const size = Math.round(Number(values['size-gib']) * 1024) * MiB;
const runs = Number(values.runs);
const cairnBin = new URL('../bin/cairn', import.meta.url).pathname;
const work = await mkdtemp(join(tmpdir(), 'cairn-bench-'));
const base = join(work, 'base.raw');
const changed = join(work, 'changed.raw');
const bitmapFile = join(work, 'cbt.b64');

try {
  console.log(`generating ${fmtMiB(size)} image (1/3 zeros, 1/3 random, 1/3 text) in ${work}`);
  await makeBaseImage(base, size);
  await copyFile(base, changed);
  const bitmap = await changeBlocks(changed, size, { fraction: 0.01 });
  await writeFile(bitmapFile, bitmap.toString('base64'));

  const results = { cairnFull: [], cairnIncr: [], resticFull: [], resticSecond: [] };
  let cairnRepoBytes = 0;
  let resticRepoBytes = 0;
  let cairnIncrRead = 0;
  for (let run = 0; run < runs; run++) {
    const repo = join(work, `cairn-${run}`);
    timed('node', [cairnBin, 'init', '--repo', repo, '--chunk-size', values['chunk-size']]);
    results.cairnFull.push(timed('node', [cairnBin, 'backup', '--repo', repo, '--vm', 'bench', '--disk', `sda=${base}`, '--json']));
    const incr = timed('node', [
      cairnBin,
      'backup',
      '--repo',
      repo,
      '--vm',
      'bench',
      '--disk',
      `sda=${changed}`,
      '--base',
      'latest',
      '--changed-blocks',
      `sda=${bitmapFile}`,
      '--json',
    ]);
    results.cairnIncr.push(incr);
    cairnIncrRead = JSON.parse(incr.stdout).disks[0].bytesRead;
    cairnRepoBytes = duBytes(repo);
    await rm(repo, { recursive: true, force: true });

    const restic = join(work, `restic-${run}`);
    const env = { RESTIC_PASSWORD: 'bench', RESTIC_REPOSITORY: restic, RESTIC_CACHE_DIR: join(work, 'restic-cache') };
    timed('restic', ['init', '-q'], { env });
    // Both runs back up the same path, so restic's second run is its incremental (parent snapshot).
    await copyFile(base, join(work, 'disk.raw'));
    results.resticFull.push(timed('restic', ['backup', '-q', join(work, 'disk.raw')], { env }));
    await copyFile(changed, join(work, 'disk.raw'));
    results.resticSecond.push(timed('restic', ['backup', '-q', join(work, 'disk.raw')], { env }));
    resticRepoBytes = duBytes(restic);
    await rm(restic, { recursive: true, force: true });
    await rm(join(work, 'restic-cache'), { recursive: true, force: true });
  }

  const summary = Object.fromEntries(
    Object.entries(results).map(([name, list]) => [
      name,
      { seconds: median(list.map((r) => r.seconds)), peakRssBytes: Math.max(...list.map((r) => r.peakRssBytes)) },
    ]),
  );
  const row = (name, label) =>
    `${label.padEnd(34)} ${summary[name].seconds.toFixed(2).padStart(7)} s  ${fmtMiBs(size, summary[name].seconds).padStart(10)}  peak RSS ${fmtMiB(summary[name].peakRssBytes)}`;
  console.log(
    `\nimage ${fmtMiB(size)}, ${runs} run(s), medians; cairn chunk size ${values['chunk-size']}; incremental changes 1 % of 64 KiB blocks`,
  );
  console.log(row('cairnFull', 'cairn backup (full)'));
  console.log(row('cairnIncr', 'cairn backup (CBT incremental)'));
  console.log(row('resticFull', 'restic backup (first)'));
  console.log(row('resticSecond', 'restic backup (second)'));
  console.log(`\ncairn incremental read ${fmtMiB(cairnIncrRead)} of ${fmtMiB(size)}`);
  console.log(
    `repository size after both runs: cairn ${fmtMiB(cairnRepoBytes)}, restic ${fmtMiB(resticRepoBytes)} (cairn/restic ${(cairnRepoBytes / resticRepoBytes).toFixed(2)})`,
  );
  console.log(`ratio full throughput cairn/restic: ${(summary.resticFull.seconds / summary.cairnFull.seconds).toFixed(2)}x (target >= 2x)`);
  console.log(
    `ratio incremental speed cairn(CBT)/restic(second): ${(summary.resticSecond.seconds / summary.cairnIncr.seconds).toFixed(1)}x (target >= 20x)`,
  );
  console.log(`peak RSS cairn: ${fmtMiB(Math.max(summary.cairnFull.peakRssBytes, summary.cairnIncr.peakRssBytes))} (target < 256 MiB)`);
} finally {
  await rm(work, { recursive: true, force: true });
}
