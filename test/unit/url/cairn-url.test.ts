import { describe, expect, it } from 'vitest';
import { formatCairnUrl, parseCairnUrl } from '../../../src/url/cairn-url.js';
import { escapeGuestName, unescapeGuestName } from '../../../src/url/guest-name.js';

describe('pseudo-URLs', () => {
  it('parses every depth', () => {
    expect(parseCairnUrl('cairn://web')).toEqual({ vm: 'web' });
    expect(parseCairnUrl('cairn://web/latest/sda')).toEqual({ vm: 'web', point: 'latest', disk: 'sda' });
    expect(parseCairnUrl('web/20261121T051233Z/sda/p2/etc/hosts')).toEqual({
      vm: 'web',
      point: '20261121T051233Z',
      disk: 'sda',
      rest: ['p2', 'etc', 'hosts'],
      partition: 2,
      path: 'etc/hosts',
    });
    // What follows the disk is for the resolver: a path on a whole-disk filesystem, or an LV.
    expect(parseCairnUrl('cairn://vm/latest/sdb/etc/my%25file').rest).toEqual(['etc', 'my%25file']);
    expect(parseCairnUrl('cairn://vm/latest/sda/lvm/vg0/root/etc').rest).toEqual(['lvm', 'vg0', 'root', 'etc']);
  });
  it('round-trips', () => {
    for (const url of ['cairn://db-1/20261121T051233Z/vda/p1', 'cairn://db-1/latest/vda/lvm/vg/lv/etc/a%2Fb']) {
      expect(formatCairnUrl(parseCairnUrl(url))).toBe(url);
    }
  });
  it('accepts the point wildcard only where asked', () => {
    expect(() => parseCairnUrl('cairn://vm/*/sda')).toThrow(/invalid point name/);
    expect(parseCairnUrl('cairn://vm/*/sda', { allowPointWildcard: true }).point).toBe('*');
  });
  it('rejects bad names and dot segments', () => {
    expect(() => parseCairnUrl('cairn://-x')).toThrow(/invalid VM name/);
    expect(() => parseCairnUrl('cairn://../x')).toThrow(/'\.' and '\.\.'/);
    expect(() => parseCairnUrl('cairn://vm/latest/sda/p1/../x')).toThrow(/'\.' and '\.\.'/);
    expect(() => parseCairnUrl('cairn://vm//sda')).toThrow(/empty path component/);
  });
});

describe('guest names', () => {
  const roundTrip = (bytes: Buffer): void => expect(unescapeGuestName(escapeGuestName(bytes))).toEqual(bytes);
  it('shows valid UTF-8 names without % or / as they are', () => {
    for (const name of ['nginx.conf', 'Grüße', '日本語', 'emoji 😀', 'a b']) expect(escapeGuestName(Buffer.from(name))).toBe(name);
  });
  it('escapes %, /, control bytes and invalid UTF-8 reversibly', () => {
    expect(escapeGuestName(Buffer.from('50%'))).toBe('50%25');
    expect(escapeGuestName(Buffer.from('a/b'))).toBe('a%2Fb');
    expect(escapeGuestName(Buffer.from([0x66, 0xff, 0x0a]))).toBe('f%FF%0A');
    // An overlong '/' and a WTF-8 surrogate are not valid UTF-8.
    expect(escapeGuestName(Buffer.from([0xc0, 0xaf]))).toBe('%C0%AF');
    expect(escapeGuestName(Buffer.from([0xed, 0xa0, 0x80]))).toBe('%ED%A0%80');
    for (const name of ['50%', 'a/b', '%41', '%%', 'x%2']) roundTrip(Buffer.from(name));
    for (let seed = 1; seed < 500; seed++) {
      const bytes = Buffer.alloc(seed % 17, 0);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (seed * 7919 + i * 104729) % 256 || 1;
      roundTrip(bytes);
    }
  });
  it('reads a lone % typed by hand as itself', () => {
    expect(unescapeGuestName('50%').toString()).toBe('50%');
    expect(unescapeGuestName('x%zz').toString()).toBe('x%zz');
  });
});
