import { describe, expect, it } from 'vitest';
import { formatCairnUrl, parseCairnUrl } from '../../../src/url/cairn-url.js';

describe('pseudo-URLs', () => {
  it('parses every depth', () => {
    expect(parseCairnUrl('cairn://web')).toEqual({ vm: 'web' });
    expect(parseCairnUrl('cairn://web/latest/sda')).toEqual({ vm: 'web', point: 'latest', disk: 'sda' });
    expect(parseCairnUrl('web/20261121T051233Z/sda/p2/etc/hosts')).toEqual({
      vm: 'web',
      point: '20261121T051233Z',
      disk: 'sda',
      partition: 2,
      path: 'etc/hosts',
    });
  });
  it('round-trips', () => {
    const url = 'cairn://db-1/20261121T051233Z/vda/p1';
    expect(formatCairnUrl(parseCairnUrl(url))).toBe(url);
  });
  it('rejects bad names and partitions', () => {
    expect(() => parseCairnUrl('cairn://../x')).toThrow(/invalid VM name/);
    expect(() => parseCairnUrl('cairn://vm/latest/sda/part1')).toThrow(/invalid partition/);
    expect(() => parseCairnUrl('cairn://vm//sda')).toThrow(/empty path component/);
  });
});
