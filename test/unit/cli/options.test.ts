import { describe, expect, it } from 'vitest';
import { parseNumberOption, parseSizeOption } from '../../../src/cli/options.js';

describe('numeric option rules', () => {
  it('takes whole numbers, decimals and sizes as the rule says, and the last of a repeated option', () => {
    expect(parseNumberOption('connections', '4', { integer: true, min: 1, max: 16 })).toBe(4);
    expect(parseNumberOption('connections', ['2', '8'], { integer: true, min: 1, max: 16 })).toBe(8);
    expect(parseNumberOption('nbd-timeout', '0.5', { above: 0 })).toBe(0.5);
    expect(parseNumberOption('grace-seconds', 3600, { min: 0 })).toBe(3600);
    expect(parseSizeOption('bwlimit', '100MiB', 1)).toBe(100 * 1024 * 1024);
  });

  it('refuses what is not a number, out of range or not whole, naming the option and the value', () => {
    const cases: [unknown, object, string][] = [
      ['abc', { integer: true, min: 0 }, "--n must be a whole number of at least 0, got 'abc'"],
      ['1e3', { integer: true, min: 0 }, "got '1e3'"],
      ['0x10', { integer: true, min: 0 }, "got '0x10'"],
      ['', { min: 0 }, "got ''"],
      ['Infinity', { min: 0 }, "got 'Infinity'"],
      ['-1', { above: 0 }, "--n must be a number greater than 0, got '-1'"],
      ['17', { integer: true, min: 1, max: 16 }, "--n must be a whole number from 1 to 16, got '17'"],
      ['9007199254740993', { integer: true, min: 0 }, 'got'],
    ];
    for (const [value, rule, message] of cases) expect(() => parseNumberOption('n', value, rule)).toThrow(message);
    expect(() => parseSizeOption('bwlimit', 'fast', 1)).toThrow("--bwlimit must be a size such as 64KiB, 100MiB or 1GiB, got 'fast'");
    expect(() => parseSizeOption('block-size', '100', 512)).toThrow("--block-size must be a size of at least 512 B, got '100'");
  });
});
