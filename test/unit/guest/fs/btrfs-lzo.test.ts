// The LZO1X decompressor against the real lzop tool (which writes LZO1X-1 with -1 and LZO1X-999
// with -9 in its own container: the blocks are plain LZO1X streams), and fuzzed: random bytes and
// damaged valid streams must decode within the output bound or throw Lzo1xError, never hang,
// overrun or throw anything else.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Lzo1xError, lzo1xDecompress } from '../../../../src/guest/fs/btrfs/lzo1x.js';
import { compressibleText, prng } from '../../../helpers/btrfs-images.js';
import { pattern } from '../../../helpers/ext4-images.js';

const LZOP_MAGIC = Buffer.from([0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a]);
const F = { ADLER32_D: 0x1, ADLER32_C: 0x2, EXTRA_FIELD: 0x40, CRC32_D: 0x100, CRC32_C: 0x200, H_FILTER: 0x800 } as const;

/**
 * The blocks of an lzop file (lzop's own container, read here only to get at the LZO1X streams):
 * each block's uncompressed length and bytes, `stored` when lzop kept it uncompressed.
 */
function lzopBlocks(file: Buffer): { data: Buffer; length: number; stored: boolean }[] {
  expect(file.subarray(0, 9).equals(LZOP_MAGIC)).toBe(true);
  let at = 9;
  const version = file.readUInt16BE(at);
  const v940 = version >= 0x0940;
  // version, lib version, [version needed], method, [level]
  at += 4 + (v940 ? 2 : 0) + 1 + (v940 ? 1 : 0);
  const flags = file.readUInt32BE(at);
  // flags, [filter], mode, mtime low, [mtime high], name length + name, header checksum
  at += 4 + (flags & F.H_FILTER ? 4 : 0) + 8 + (v940 ? 4 : 0);
  at += 1 + file[at]! + 4;
  if (flags & F.EXTRA_FIELD) at += 4 + file.readUInt32BE(at) + 4;
  const blocks: { data: Buffer; length: number; stored: boolean }[] = [];
  for (;;) {
    const length = file.readUInt32BE(at);
    if (length === 0) return blocks;
    const size = file.readUInt32BE(at + 4);
    at += 8 + (flags & F.ADLER32_D ? 4 : 0) + (flags & F.CRC32_D ? 4 : 0);
    if (size < length) at += (flags & F.ADLER32_C ? 4 : 0) + (flags & F.CRC32_C ? 4 : 0);
    blocks.push({ data: file.subarray(at, at + size), length, stored: size >= length });
    at += size;
  }
}

function lzop(data: Buffer, level: string): Buffer {
  return execFileSync('lzop', [level, '-c'], { input: data, maxBuffer: 1 << 28 });
}

const INPUTS: [string, Buffer][] = [
  ['compressible text', compressibleText(600_000, 1)],
  ['random bytes', pattern(300_000, 2)],
  ['long zero runs (extended lengths)', Buffer.concat([Buffer.alloc(70_000), pattern(10, 3), Buffer.alloc(300_000), Buffer.from('end')])],
  [
    'short repeats at every distance',
    Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i % 7) * ((i >> 10) % 5) + (i % 251 === 0 ? 1 : 0))),
  ],
  ['a short run', Buffer.concat([Buffer.alloc(64, 0x61), Buffer.from('z')])],
];

describe('LZO1X decompressor vs lzop', () => {
  for (const level of ['-1', '-9']) {
    it.each(INPUTS)(`decodes lzop ${level} output of %s`, (name, data) => {
      let at = 0;
      let compressed = 0;
      for (const block of lzopBlocks(lzop(data, level))) {
        if (!block.stored) {
          compressed++;
          expect(lzo1xDecompress(block.data, block.length).equals(data.subarray(at, at + block.length))).toBe(true);
        }
        at += block.length;
      }
      expect(at).toBe(data.length);
      if (name !== 'random bytes') expect(compressed).toBeGreaterThan(0);
    });
  }

  it('refuses output beyond the bound, truncation and trailing bytes', () => {
    const block = lzopBlocks(lzop(compressibleText(100_000, 5), '-1')).find((b) => !b.stored);
    expect(() => lzo1xDecompress(block!.data, block!.length - 1)).toThrow(Lzo1xError);
    expect(() => lzo1xDecompress(block!.data.subarray(0, block!.data.length - 1), block!.length)).toThrow(Lzo1xError);
    expect(() => lzo1xDecompress(Buffer.concat([block!.data, Buffer.from([0])]), block!.length)).toThrow(Lzo1xError);
    expect(() => lzo1xDecompress(Buffer.alloc(0), 10)).toThrow(Lzo1xError);
  });
});

describe('LZO1X decompressor fuzz', () => {
  it('random input and damaged streams decode within the bound or throw Lzo1xError', () => {
    const valid = lzopBlocks(lzop(compressibleText(64 * 1024, 7), '-1')).find((b) => !b.stored)!;
    const started = performance.now();
    for (let seed = 1; seed <= 2000; seed++) {
      const random = prng(seed);
      let input: Buffer;
      if (seed % 2 === 0) {
        input = Buffer.from(Array.from({ length: 1 + Math.floor(random() * 600) }, () => Math.floor(random() * 256)));
      } else {
        input = Buffer.from(valid.data);
        for (let i = 0, n = 1 + Math.floor(random() * 6); i < n; i++)
          input[Math.floor(random() * input.length)] = Math.floor(random() * 256);
      }
      const bound = seed % 3 === 0 ? 4096 : valid.length;
      try {
        const out = lzo1xDecompress(input, bound);
        expect(out.length).toBeLessThanOrEqual(bound);
      } catch (err) {
        if (!(err instanceof Lzo1xError)) throw new Error(`seed ${seed}: ${String(err)}`, { cause: err });
      }
    }
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});
