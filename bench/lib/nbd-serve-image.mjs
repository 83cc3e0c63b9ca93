// A disk image shaped like a used VM disk, for the NBD serve benchmark: per 1 MiB, about a quarter
// never written (zeros), two fifths text-like data that compresses well, the rest incompressible.
// Zero 64 KiB blocks are also sprinkled inside text regions (holes qcow2 sees but whole chunks don't).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { prng } from './prng.mjs';

const MiB = 1024 * 1024;

function textMiB(rand, index) {
  const lines = [];
  let length = 0;
  while (length < MiB) {
    const line = `2026-11-21T05:${String(Math.floor(rand() * 60)).padStart(2, '0')}:${String(Math.floor(rand() * 60)).padStart(2, '0')} host${Math.floor(rand() * 16)} svc[${Math.floor(rand() * 65536)}]: request ${index}-${Math.floor(rand() * 1e6)} served in ${Math.floor(rand() * 1000)} ms status=${rand() < 0.9 ? 200 : 503}\n`;
    lines.push(line);
    length += line.length;
  }
  const buf = Buffer.from(lines.join(''), 'latin1').subarray(0, MiB);
  // A few never-written 64 KiB blocks inside the region.
  for (let b = 0; b < 16; b++) if (rand() < 0.15) buf.fill(0, b * 65536, (b + 1) * 65536);
  return buf;
}

/** Writes a `size`-byte image (a multiple of 1 MiB) at `file`; returns counts of each region kind. */
export function makeServeImage(file, size, seed = 1) {
  const rand = prng(seed);
  const fd = fs.openSync(file, 'w');
  const counts = { zero: 0, text: 0, random: 0 };
  try {
    fs.ftruncateSync(fd, size);
    for (let i = 0; i < size / MiB; i++) {
      const r = rand();
      if (r < 0.25) {
        counts.zero++;
        continue; // left as a hole in the file
      }
      const data = r < 0.65 ? textMiB(rand, i) : randomBytes(MiB);
      counts[r < 0.65 ? 'text' : 'random']++;
      fs.writeSync(fd, data, 0, data.length, i * MiB);
    }
  } finally {
    fs.closeSync(fd);
  }
  return counts;
}
