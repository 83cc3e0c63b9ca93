import { describe, expect, it } from 'vitest';
import { formatNbdUri, isNbdUri, parseNbdUri } from '../../../../src/formats/nbd-uri.js';

describe('parseNbdUri', () => {
  it('reads the export-name table of doc/uri.md', () => {
    expect(parseNbdUri('nbd://example.com/disk').exportName).toBe('disk');
    expect(parseNbdUri('nbd+unix:///disk?socket=sock').exportName).toBe('disk');
    expect(parseNbdUri('nbd://example.com/').exportName).toBe('');
    expect(parseNbdUri('nbd://example.com').exportName).toBe('');
    expect(parseNbdUri('nbd://example.com//disk').exportName).toBe('/disk');
    expect(parseNbdUri('nbd://example.com/hello%20world').exportName).toBe('hello world');
  });

  it('defaults the TCP port to 10809 and accepts IPv6 literals', () => {
    expect(parseNbdUri('nbd://h/x').endpoint).toEqual({ transport: 'tcp', host: 'h', port: 10809 });
    expect(parseNbdUri('nbd://[::1]:1234/x').endpoint).toEqual({ transport: 'tcp', host: '::1', port: 1234 });
  });

  it('takes the Unix socket from ?socket=, percent-decoded', () => {
    const u = parseNbdUri('nbd+unix:///drive-scsi0?socket=/run/a%20b/nbd.sock');
    expect(u.endpoint).toEqual({ transport: 'unix', path: '/run/a b/nbd.sock' });
    expect(u.exportName).toBe('drive-scsi0');
    expect(u.tls).toBe(false);
  });

  it('marks nbds schemes as TLS-required', () => {
    expect(parseNbdUri('nbds://h/x').tls).toBe(true);
    expect(parseNbdUri('nbds+unix:///x?socket=/s').tls).toBe(true);
  });

  it('refuses malformed URIs with ERR_INVALID_ARGUMENT', () => {
    for (const bad of [
      'http://h/x',
      'nbd+unix:///x',
      'nbd+unix://host/x?socket=/s',
      'nbd:///x',
      'nbd://h:99999/x',
      'nbd://h/%zz',
      'nbd://h/a%00b',
      'nbd://h/x?socket=1&socket=2',
    ]) {
      expect(() => parseNbdUri(bad), bad).toThrowError(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
  });

  it('round-trips through formatNbdUri and is recognised by isNbdUri', () => {
    for (const text of ['nbd://h:10809/a%20b', 'nbd+unix:///x?socket=%2Ftmp%2Fs']) {
      expect(parseNbdUri(formatNbdUri(parseNbdUri(text)))).toEqual(parseNbdUri(text));
      expect(isNbdUri(text)).toBe(true);
    }
    expect(isNbdUri('/dev/sda')).toBe(false);
  });
});
