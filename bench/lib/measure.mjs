// Runs a command under GNU time and returns wall seconds and peak RSS; summary helpers for benchmarks.
import { spawnSync } from 'node:child_process';

export function timed(command, args, { env = {}, input } = {}) {
  // Flush what earlier steps left dirty (generated images, copies) so that no tool pays for writing
  // back another's data when it syncs.
  spawnSync('sync');
  const result = spawnSync('/usr/bin/time', ['-f', '__TIME__ %e %M', command, ...args], {
    env: { ...process.env, ...env },
    input,
    maxBuffer: 64 * 1024 * 1024,
  });
  const stderr = result.stderr.toString();
  const match = /__TIME__ ([0-9.]+) ([0-9]+)/.exec(stderr);
  if (result.status !== 0 || !match) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${stderr.slice(-2000)}`);
  }
  return { seconds: Number(match[1]), peakRssBytes: Number(match[2]) * 1024, stdout: result.stdout.toString() };
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export const MiB = 1024 * 1024;
export const fmtMiBs = (bytes, seconds) => `${(bytes / MiB / seconds).toFixed(0)} MiB/s`;
export const fmtMiB = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;

export function duBytes(path) {
  const out = spawnSync('du', ['-sb', path]).stdout.toString();
  return Number(out.split('\t')[0]);
}
