// qcow2 ingest benchmark (issue: every hypervisor's backup format). In one run, on the same generated
// image (bench/lib/make-image.mjs: a third zeros, a third random, a third text):
//   - `qemu-img convert` of the zstd-compressed qcow2 to qemu's null-co driver (its /dev/null: qemu-img
//     refuses /dev/null itself as smaller than the disk): the speed of reading the format;
//   - `cairn backup` of that qcow2, and of the raw image it was made from (the raw ingest it is held to);
//   - an increment: a qcow2 overlay with 2 % of the disk written (64 KiB writes through qemu-io),
//     `cairn backup --base latest` of it, against a full (flattened) read of the same overlay.
// Prints medians over --runs runs and the ratios. Page cache warm for everyone (the images fit in RAM).
// Usage: npm run build && flock /tmp/cairn-bench.lock node bench/qcow2-ingest.mjs [--size-gib 4] [--runs 3]
import { mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeBaseImage, randomStream } from './lib/make-image.mjs';
import { duBytes, fmtMiB, fmtMiBs, median, MiB } from './lib/measure.mjs';

const { values } = parseArgs({
  options: {
    'size-gib': { type: 'string', default: '4' },
    runs: { type: 'string', default: '3' },
    'written-percent': { type: 'string', default: '2' },
  },
});
const size = Math.round(Number(values['size-gib']) * 1024) * MiB;
const runs = Number(values.runs);
const cairnBin = new URL('../bin/cairn', import.meta.url).pathname;
const work = await mkdtemp(join(tmpdir(), 'cairn-bench-qcow2-'));
const raw = join(work, 'base.raw');
const full = join(work, 'full.qcow2');
const overlay = join(work, 'overlay.qcow2');

function run(command, args, input) {
  const result = spawnSync(command, args, { input, maxBuffer: 256 * MiB });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout.toString();
}

/**
 * Wall and CPU seconds (user + system, every thread) and peak RSS under GNU time. CPU time is quoted
 * beside wall time: on a shared two-core machine it is the steadier of the two.
 */
function timed(command, args) {
  spawnSync('sync');
  const result = spawnSync('/usr/bin/time', ['-f', '__TIME__ %e %U %S %M', command, ...args], { maxBuffer: 64 * MiB });
  const match = /__TIME__ ([0-9.]+) ([0-9.]+) ([0-9.]+) ([0-9]+)/.exec(result.stderr.toString());
  if (result.status !== 0 || !match)
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr.toString().slice(-2000)}`);
  return {
    seconds: Number(match[1]),
    cpuSeconds: Number(match[2]) + Number(match[3]),
    peakRssBytes: Number(match[4]) * 1024,
    stdout: result.stdout.toString(),
  };
}

const cairn = (repo, ...args) => timed('node', [cairnBin, ...args, '--repo', repo, '--json']);

try {
  console.log(`generating ${fmtMiB(size)} image in ${work}`);
  await makeBaseImage(raw, size, { sparse: true });
  let t = Date.now();
  run('qemu-img', ['convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', raw, full]);
  console.log(`qemu-img convert -c (zstd): ${((Date.now() - t) / 1000).toFixed(1)} s, ${fmtMiB(duBytes(full))}`);
  // The overlay: 64 KiB writes at random 64 KiB-aligned places until the written share is reached.
  run('qemu-img', ['create', '-f', 'qcow2', '-b', full, '-F', 'qcow2', overlay]);
  const writes = Math.round((size * Number(values['written-percent'])) / 100 / (64 * 1024));
  const pick = randomStream('overlay');
  const commands = [];
  for (let i = 0; i < writes; i++) {
    const block = pick(4).readUInt32LE(0) % (size / (64 * 1024));
    commands.push(`write -P ${(i % 250) + 1} ${block * 64 * 1024} 64k`);
  }
  t = Date.now();
  run('qemu-io', [overlay], Buffer.from(commands.join('\n') + '\nquit\n'));
  console.log(
    `overlay: ${writes} writes of 64 KiB (${values['written-percent']} %), ${((Date.now() - t) / 1000).toFixed(1)} s, ${fmtMiB(duBytes(overlay))}`,
  );

  const results = { qemuRead: [], cairnQcow2: [], cairnRaw: [], increment: [], fullRead: [] };
  let incrementRead = 0;
  for (let n = 0; n < runs; n++) {
    // qemu's null-co block driver is its /dev/null: it takes the writes and discards them.
    results.qemuRead.push(timed('qemu-img', ['convert', '-n', '--target-image-opts', full, `driver=null-co,size=${size}`]));
    const qRepo = join(work, `q-${n}`);
    timed('node', [cairnBin, 'init', '--repo', qRepo]);
    results.cairnQcow2.push(cairn(qRepo, 'backup', '--vm', 'b', '--disk', `sda=${full}`));
    results.increment.push(cairn(qRepo, 'backup', '--vm', 'b', '--disk', `sda=${overlay}`, '--base', 'latest'));
    incrementRead = JSON.parse(results.increment.at(-1).stdout).disks[0].bytesRead;
    const rRepo = join(work, `r-${n}`);
    timed('node', [cairnBin, 'init', '--repo', rRepo]);
    results.cairnRaw.push(cairn(rRepo, 'backup', '--vm', 'b', '--disk', `sda=${raw}`));
    const fRepo = join(work, `f-${n}`);
    timed('node', [cairnBin, 'init', '--repo', fRepo]);
    results.fullRead.push(cairn(fRepo, 'backup', '--vm', 'b', '--disk', `sda=${overlay}`));
    for (const repo of [qRepo, rRepo, fRepo]) await rm(repo, { recursive: true, force: true });
  }
  const m = Object.fromEntries(Object.entries(results).map(([key, list]) => [key, median(list.map((r) => r.seconds))]));
  const cpu = Object.fromEntries(Object.entries(results).map(([key, list]) => [key, median(list.map((r) => r.cpuSeconds))]));
  const rss = Object.fromEntries(Object.entries(results).map(([key, list]) => [key, Math.max(...list.map((r) => r.peakRssBytes))]));
  const row = (label, key) =>
    console.log(
      `${label.padEnd(44)} ${m[key].toFixed(2).padStart(7)} s  ${fmtMiBs(size, m[key]).padStart(11)}  cpu ${cpu[key].toFixed(2).padStart(6)} s  peak RSS ${fmtMiB(rss[key])}`,
    );
  console.log(`\nmedians of ${runs} runs, ${fmtMiB(size)} virtual disk`);
  row('qemu-img convert qcow2 -> null-co', 'qemuRead');
  row('cairn backup (zstd qcow2)', 'cairnQcow2');
  row('cairn backup (the raw image)', 'cairnRaw');
  row('cairn backup --base latest (2 % overlay)', 'increment');
  row('cairn backup (same overlay, flattened)', 'fullRead');
  console.log(
    `\nqcow2 ingest / raw ingest throughput: ${(m.cairnRaw / m.cairnQcow2).toFixed(2)}x wall, ${(cpu.cairnRaw / cpu.cairnQcow2).toFixed(2)}x cpu (target >= 0.9x)`,
  );
  console.log(`qcow2 ingest / qemu-img read speed:  ${(m.qemuRead / m.cairnQcow2).toFixed(2)}x`);
  console.log(
    `increment vs full read: ${(m.fullRead / m.increment).toFixed(1)}x faster wall, ${(cpu.fullRead / cpu.increment).toFixed(1)}x cpu (target >= 20x); increment read ${fmtMiB(incrementRead)}`,
  );
} finally {
  if (!process.env.KEEP) await rm(work, { recursive: true, force: true });
}
