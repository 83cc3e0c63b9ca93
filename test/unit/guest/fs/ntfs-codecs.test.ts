// The NTFS reader's pure decoders on known vectors and on random input: LZNT1 (bounded by the unit
// it decodes into, whatever the input), mapping pairs (every run inside the volume and the VCN
// range, whatever the input) and WTF-8 names (every UTF-16 name, paired or not, maps to bytes and
// back exactly). Random inputs are seeded, so a failure names its seed.
import { describe, expect, it } from 'vitest';
import { decodeMappingPairs, lznt1Decompress, RunList } from '../../../../src/guest/fs/ntfs/index.js';
import { fromWtf8, toWtf8 } from '../../../../src/guest/fs/ntfs/names.js';
import { prng } from '../../../helpers/guest-fs-fuzz.js';

const randomBytes = (random: () => number, n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));

describe('LZNT1', () => {
  it('decodes literals and an overlapping back-reference, then zeros to the end of the unit', () => {
    // Flag byte 0b1000: three literals, then a back-reference at position 3 (12 distance bits):
    // distance 3 → (3 - 1) << 12, length 6 → 6 - 3.
    const sub = Buffer.from([0x08, 0x61, 0x62, 0x63, 0x03, 0x20]);
    const header = Buffer.alloc(2);
    header.writeUInt16LE(0x8000 | (sub.length + 2 - 3));
    const dest = Buffer.alloc(8192, 0xee);
    expect(lznt1Decompress(Buffer.concat([header, sub]), dest)).toBeUndefined();
    expect(dest.subarray(0, 9).toString()).toBe('abcabcabc');
    expect(dest.subarray(9).every((b) => b === 0)).toBe(true);
  });

  it('copies a stored sub-block and refuses one of the wrong size', () => {
    const data = Buffer.from(Array.from({ length: 4096 }, (_, i) => i & 0xff));
    const header = Buffer.alloc(2);
    header.writeUInt16LE(4096 + 2 - 3);
    const dest = Buffer.alloc(4096);
    expect(lznt1Decompress(Buffer.concat([header, data]), dest)).toBeUndefined();
    expect(dest.equals(data)).toBe(true);
    header.writeUInt16LE(4000 + 2 - 3);
    expect(lznt1Decompress(Buffer.concat([header, data.subarray(0, 4000)]), Buffer.alloc(4096))).toMatch(/not 4096 bytes/);
  });

  it('refuses back-references before the sub-block or at its start', () => {
    // Flags 0b10: a literal 'a', then at position 1 a back-reference 16 bytes back.
    const before = Buffer.from([0x03, 0x80, 0x02, 0x61, 0xff, 0xff]);
    expect(lznt1Decompress(before, Buffer.alloc(4096))).toMatch(/before its sub-block/);
    const first = Buffer.from([0x02, 0x80, 0x01, 0x00, 0x10]);
    expect(lznt1Decompress(first, Buffer.alloc(4096))).toMatch(/starts with a back-reference/);
  });

  it('never throws nor writes beyond the unit on random input', () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const random = prng(seed);
      const src = randomBytes(random, 1 + Math.floor(random() * 9000));
      // Make compressed headers likely, so that the token decoder runs.
      if (random() < 0.7) src.writeUInt16LE(0x8000 | Math.floor(random() * 0x1000), 0);
      const unit = Buffer.alloc(4096 * (1 + Math.floor(random() * 4)) + 16, 0x5a);
      const dest = unit.subarray(0, unit.length - 16);
      const result = lznt1Decompress(src, dest);
      expect(result === undefined || typeof result === 'string').toBe(true);
      expect(unit.subarray(unit.length - 16).every((b) => b === 0x5a)).toBe(true);
    }
  });
});

describe('mapping pairs', () => {
  const limits = (highestVcn: number, clusterCount = 1 << 20) => ({ lowestVcn: 0, highestVcn, clusterCount, maxRuns: 1000 });

  it("decodes libfsntfs's example: 2 clusters at LCN 0x5235, then a 14-cluster hole", () => {
    const runs = new RunList();
    expect(decodeMappingPairs(Buffer.from([0x21, 0x02, 0x35, 0x52, 0x01, 0x0e, 0x00]), 0, 7, limits(15), runs)).toBeUndefined();
    expect([runs.count, runs.vcn(0), runs.lcn(0), runs.length(0), runs.lcn(1), runs.length(1)]).toEqual([2, 0, 0x5235, 2, -1, 14]);
  });

  it('adds signed deltas (a run before the previous one)', () => {
    const runs = new RunList();
    // 4 clusters at 1000, then 4 at 1000 - 16 (delta 0xf0 is -16).
    expect(decodeMappingPairs(Buffer.from([0x21, 0x04, 0xe8, 0x03, 0x11, 0x04, 0xf0, 0x00]), 0, 8, limits(7), runs)).toBeUndefined();
    expect([runs.lcn(0), runs.lcn(1)]).toEqual([1000, 984]);
  });

  it('refuses runs outside the volume, before cluster 0, past the VCN range, or unterminated', () => {
    const bad = (bytes: number[], highest: number, clusters = 2000): string | undefined =>
      decodeMappingPairs(Buffer.from(bytes), 0, bytes.length, limits(highest, clusters), new RunList());
    expect(bad([0x21, 0x04, 0xe8, 0x03, 0x00], 3, 1002)).toMatch(/outside/);
    expect(bad([0x11, 0x04, 0x10, 0x11, 0x04, 0xe0, 0x00], 7)).toMatch(/outside/);
    expect(bad([0x11, 0x08, 0x10, 0x00], 3)).toMatch(/beyond the highest VCN/);
    expect(bad([0x11, 0x02, 0x10, 0x00], 3)).toMatch(/not at the highest VCN/);
    expect(bad([0x11, 0x04, 0x10], 3)).toMatch(/past the end/);
    expect(bad([0x19, 0x04, 0x10, 0x00], 3)).toMatch(/invalid header/);
    expect(bad([0x11, 0x00, 0x10, 0x00], 3)).toMatch(/invalid length/);
  });

  it('never throws and only yields runs inside the volume and the VCN range on random input', () => {
    for (let seed = 1; seed <= 5000; seed++) {
      const random = prng(seed);
      const bytes = randomBytes(random, 1 + Math.floor(random() * 64));
      const highest = Math.floor(random() * 5000);
      const runs = new RunList();
      const problem = decodeMappingPairs(
        bytes,
        0,
        bytes.length,
        { lowestVcn: 0, highestVcn: highest, clusterCount: 100_000, maxRuns: 50 },
        runs,
      );
      if (problem !== undefined) continue;
      let vcn = 0;
      for (let i = 0; i < runs.count; i++) {
        expect(runs.vcn(i)).toBe(vcn);
        expect(runs.lcn(i) === -1 || (runs.lcn(i) >= 0 && runs.lcn(i) + runs.length(i) <= 100_000)).toBe(true);
        vcn += runs.length(i);
      }
      expect(vcn === highest + 1 || (vcn === 0 && highest === 0)).toBe(true);
    }
  });
});

describe('names', () => {
  it('writes unpaired surrogates as 3-byte WTF-8 and reads them back', () => {
    const lone = String.fromCharCode(0x61, 0xd800, 0x62, 0xdc00);
    const bytes = toWtf8(lone);
    expect(bytes).toEqual(Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62, 0xed, 0xb0, 0x80]));
    expect(fromWtf8(bytes)).toBe(lone);
    expect(toWtf8('😀').toString('hex')).toBe('f09f9880');
    // A pair spelt as two 3-byte sequences is not WTF-8 (the name has one form: the 4-byte one).
    expect(fromWtf8(Buffer.from([0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]))).toBeUndefined();
    expect(fromWtf8(Buffer.from([0xc0, 0x80]))).toBeUndefined();
    expect(fromWtf8(Buffer.from([0xe2, 0x82]))).toBeUndefined();
  });

  it('round-trips random UTF-16 names exactly', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const random = prng(seed);
      const units = Array.from({ length: 1 + Math.floor(random() * 40) }, () =>
        random() < 0.3 ? 0xd800 + Math.floor(random() * 0x800) : Math.floor(random() * 0x10000),
      );
      const name = String.fromCharCode(...units);
      expect(fromWtf8(toWtf8(name))).toBe(name);
    }
  });
});
