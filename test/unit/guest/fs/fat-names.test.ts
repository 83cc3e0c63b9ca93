// The FAT reader's name and time codecs against independent references: Node's own UTF-8 encoder,
// Python's cp437 codec, and the WTF-8 forms the guest-filesystem interface asks for.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { fatTimeToNs } from '../../../../src/guest/fs/fat/fat-time.js';
import { foldUnits, unitsOf, utf16FromWtf8, wtf8FromUtf16 } from '../../../../src/guest/fs/fat/long-name.js';
import { decodeCp437, shortNameOf } from '../../../../src/guest/fs/fat/short-name.js';

const SAMPLES = [
  'hello.txt',
  'Ünïcødé accents é à ç',
  '日本語のファイル名',
  '\u{1F600} smile',
  'mixed 𝄞 music ß',
  '\u00a0nbsp',
  'x'.repeat(255),
];

describe('long names', () => {
  it('encodes well-formed UTF-16 exactly as UTF-8', () => {
    for (const text of SAMPLES) expect(wtf8FromUtf16(unitsOf(text)).equals(Buffer.from(text, 'utf8')), text).toBe(true);
  });

  it('writes unpaired surrogates as their own 3-byte sequences', () => {
    expect(wtf8FromUtf16([0xd800]).toString('hex')).toBe('eda080');
    expect(wtf8FromUtf16([0x41, 0xdfff, 0x42]).toString('hex')).toBe('41edbfbf42');
    // A low surrogate before a high one is two unpaired surrogates, not a pair.
    expect(wtf8FromUtf16([0xdc00, 0xd800]).toString('hex')).toBe('edb080eda080');
  });

  it('decodes what it encodes, and nothing that is not WTF-8', () => {
    for (const units of [...SAMPLES.map(unitsOf), [0xd800], [0x41, 0xdbff, 0x20], [0xdc00, 0xd800]]) {
      expect(utf16FromWtf8(wtf8FromUtf16(units))).toEqual(units);
    }
    for (const hex of ['c080', 'e08080', 'f08080ff', 'eda080edb080', 'f5808080', 'e282', '80', 'ff']) {
      expect(utf16FromWtf8(Buffer.from(hex, 'hex')), hex).toBeUndefined();
    }
  });

  it('folds case one UTF-16 unit at a time, as an upcase table does', () => {
    expect(foldUnits(unitsOf('Readme.TXT'))).toBe(foldUnits(unitsOf('README.txt')));
    expect(foldUnits(unitsOf('ünïcødé'))).toBe(foldUnits(unitsOf('ÜNÏCØDÉ')));
    // 'ß' upper-cases to two letters: it stays itself rather than match 'SS'.
    expect(foldUnits(unitsOf('ß'))).not.toBe(foldUnits(unitsOf('SS')));
    expect(foldUnits([0xd83d, 0xde00])).toBe(String.fromCharCode(0xd83d, 0xde00));
  });
});

describe('8.3 names', () => {
  it('decodes OEM bytes as Python decodes code page 437', () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const python = execFileSync('python3', [
      '-c',
      'import sys; sys.stdout.buffer.write(bytes(range(256)).decode("cp437").encode("utf-8"))',
    ]);
    expect(Buffer.from(decodeCp437(bytes), 'utf8').equals(python)).toBe(true);
  });

  it('joins base and extension, honours the NT lower-case bits and the 0x05 escape', () => {
    expect(shortNameOf(Buffer.from('README  TXT'), 0)).toBe('README.TXT');
    expect(shortNameOf(Buffer.from('README  TXT'), 0x08)).toBe('readme.TXT');
    expect(shortNameOf(Buffer.from('README  TXT'), 0x18)).toBe('readme.txt');
    expect(shortNameOf(Buffer.from('NOEXT      '), 0x10)).toBe('NOEXT');
    expect(shortNameOf(Buffer.from('\x05BC     TXT', 'latin1'), 0)).toBe('σBC.TXT');
  });
});

describe('times', () => {
  it('reads the fields as UTC with 2-second and 10 ms units', () => {
    const date = ((2021 - 1980) << 9) | (3 << 5) | 4;
    const time = (5 << 11) | (6 << 5) | 3;
    expect(fatTimeToNs(date, time)).toBe(BigInt(Date.UTC(2021, 2, 4, 5, 6, 6)) * 1_000_000n);
    expect(fatTimeToNs(date, time, 199)).toBe(BigInt(Date.UTC(2021, 2, 4, 5, 6, 7, 990)) * 1_000_000n);
  });

  it('reads month 0 and day 0 as 1, as Linux does, and carries other overflow', () => {
    expect(fatTimeToNs(0, 0)).toBe(BigInt(Date.UTC(1980, 0, 1)) * 1_000_000n);
    expect(fatTimeToNs((1 << 9) | (13 << 5) | 1, 0)).toBe(BigInt(Date.UTC(1982, 0, 1)) * 1_000_000n);
  });
});
