// Generates the benchmark disk image: a third zeros, a third random data, a third compressible text,
// interleaved in 16 MiB stretches as on a real disk; and changes a fraction of its 64 KiB blocks,
// returning the changed-block bitmap (one bit per block, LSB first, as Xen CBT gives it).
// Deterministic: the same size and seed give the same bytes.
import { createCipheriv, createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

const MiB = 1024 * 1024;
const STRETCH = 16 * MiB;

/** Deterministic pseudo-random bytes (AES-CTR over zeros with a key derived from the seed). */
export function randomStream(seed) {
  const key = createHash('sha256').update(String(seed)).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return (length) => cipher.update(Buffer.alloc(length));
}

const WORDS =
  'backup restore chunk disk point virtual machine snapshot volume block qemu proxmox xen ceph export import bitmap dirty clean store verify prune garbage collect index manifest the a of and to in is that for it as with was on be by this are from at or have an they which'.split(
    ' ',
  );

function textBlock(random, length) {
  const bytes = random(length);
  let out = '';
  for (let i = 0; out.length < length; i++) {
    out += WORDS[bytes[i % length] % WORDS.length] + (bytes[(i * 7) % length] % 13 === 0 ? '.\n' : ' ');
  }
  return Buffer.from(out.slice(0, length));
}

/** Writes the base image of `size` bytes to `path`. Zero stretches are written as real zeros unless `sparse`. */
export async function makeBaseImage(path, size, { seed = 1, sparse = false } = {}) {
  const random = randomStream(seed);
  const handle = await open(path, 'w');
  try {
    await handle.truncate(size);
    const zeros = Buffer.alloc(STRETCH);
    for (let offset = 0, i = 0; offset < size; offset += STRETCH, i++) {
      const length = Math.min(STRETCH, size - offset);
      const kind = i % 3;
      if (kind === 0 && sparse) continue;
      const data = kind === 0 ? zeros.subarray(0, length) : kind === 1 ? random(length) : textBlock(random, length);
      await handle.write(data, 0, length, offset);
    }
  } finally {
    await handle.close();
  }
}

/** Overwrites `fraction` of the image's blocks with new random data; returns the changed-block bitmap. */
export async function changeBlocks(path, size, { fraction = 0.01, blockSize = 64 * 1024, seed = 2 } = {}) {
  const blocks = Math.ceil(size / blockSize);
  const bitmap = Buffer.alloc(Math.ceil(blocks / 8));
  const pick = randomStream(`pick-${seed}`);
  const data = randomStream(`data-${seed}`);
  const wanted = Math.max(1, Math.round(blocks * fraction));
  const handle = await open(path, 'r+');
  try {
    let changed = 0;
    while (changed < wanted) {
      const block = pick(4).readUInt32LE(0) % blocks;
      if (bitmap[block >> 3] & (1 << (block & 7))) continue;
      bitmap[block >> 3] |= 1 << (block & 7);
      await handle.write(data(blockSize), 0, Math.min(blockSize, size - block * blockSize), block * blockSize);
      changed++;
    }
  } finally {
    await handle.close();
  }
  return bitmap;
}

// As a script: node bench/lib/make-image.mjs PATH SIZE_BYTES
if (import.meta.url === `file://${process.argv[1]}`) {
  const [path, size] = process.argv.slice(2);
  await makeBaseImage(path, Number(size));
}
