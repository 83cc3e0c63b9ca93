import { describe, expect, it } from 'vitest';
import { isCairnError } from '../../../../src/core/errors.js';
import {
  ExportRegistry,
  formatListenAddress,
  isLocalOnly,
  matchMetaContexts,
  parseListenAddress,
} from '../../../../src/nbd/server/index.js';
import { coverRange, readCost } from '../../../../src/nbd/server/transmission.js';
import { MemoryCatalog, MemoryDisk } from './memory-catalog.js';

describe('listen addresses', () => {
  it('parses TCP, IPv6 and Unix forms', () => {
    expect(parseListenAddress('tcp://127.0.0.1:10809')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 10809 });
    expect(parseListenAddress('tcp://localhost')).toEqual({ kind: 'tcp', host: 'localhost', port: 10809 });
    expect(parseListenAddress('tcp://[::1]:0')).toEqual({ kind: 'tcp', host: '::1', port: 0 });
    expect(parseListenAddress('unix:/run/cairn.sock')).toEqual({ kind: 'unix', path: '/run/cairn.sock' });
    expect(formatListenAddress(parseListenAddress('tcp://[::1]:5'))).toBe('tcp://[::1]:5');
    for (const bad of ['nbd://x', 'tcp://', 'tcp://h:99999', 'unix:', 'tcp://a:b']) {
      expect(() => parseListenAddress(bad), bad).toThrow(/invalid NBD listen address/);
    }
  });

  it('treats only loopback and Unix sockets as local', () => {
    expect(isLocalOnly(parseListenAddress('tcp://127.0.0.5:1'))).toBe(true);
    expect(isLocalOnly(parseListenAddress('tcp://[::1]:1'))).toBe(true);
    expect(isLocalOnly(parseListenAddress('unix:/tmp/s'))).toBe(true);
    expect(isLocalOnly(parseListenAddress('tcp://0.0.0.0:1'))).toBe(false);
    expect(isLocalOnly(parseListenAddress('tcp://[::]:1'))).toBe(false);
    expect(isLocalOnly(parseListenAddress('tcp://192.168.1.2:1'))).toBe(false);
  });
});

describe('ExportRegistry', () => {
  const catalog = new MemoryCatalog();
  const a = new MemoryDisk(Buffer.alloc(4096, 1), 4096);
  const b = new MemoryDisk(Buffer.alloc(8192, 2), 4096);
  catalog.addPoint('web', 'P1', { sda: a });
  catalog.addPoint('web', 'P2', { sda: b, sdb: a });
  const registry = new ExportRegistry(catalog);

  it('pins latest to the newest point id', async () => {
    const exp = await registry.open('web/latest/sdb');
    expect(exp.point.id).toBe('P2');
    expect(exp.canonicalName).toBe('web/P2/sdb');
    expect(exp.reader.size).toBe(4096);
  });

  it('answers ERR_NOT_FOUND for unknown or malformed names, never another error', async () => {
    for (const name of [
      'web/P1/sdb',
      'web/P9/sda',
      'nope/latest/sda',
      'web/latest',
      '',
      'web/latest/sda/p1',
      'a/b/c/p1/etc/passwd',
      '%%%/x/y',
    ]) {
      const err = await registry.open(name).catch((e: unknown) => e);
      expect(isCairnError(err, 'ERR_NOT_FOUND'), name).toBe(true);
    }
  });

  it('offers cairn:changed only for other points that hold the disk', async () => {
    const exp = await registry.open('web/P2/sda');
    const listed = await matchMetaContexts(registry, exp, [], 'list');
    expect(listed.map((c) => c.name)).toEqual(['base:allocation', 'cairn:changed:P1']);
    const sdb = await registry.open('web/P2/sdb');
    expect((await matchMetaContexts(registry, sdb, ['cairn:'], 'list')).map((c) => c.name)).toEqual([]);
    expect((await matchMetaContexts(registry, exp, ['cairn:changed:P2', 'cairn:changed:latest'], 'set')).map((c) => c.name)).toEqual([]);
    const set = await matchMetaContexts(registry, exp, ['cairn:changed:P1', 'x-other:thing'], 'set');
    expect(set.map((c) => [c.name, c.kind])).toEqual([['cairn:changed:P1', 'changed']]);
  });
});

describe('coverRange', () => {
  it('clips, fills gaps with data and merges neighbours', () => {
    expect(
      coverRange(
        [
          { offset: 0, length: 100, zero: true },
          { offset: 100, length: 50, zero: true },
          { offset: 200, length: 100, zero: false },
        ],
        50,
        300,
      ),
    ).toEqual([
      { offset: 50, length: 100, zero: true },
      { offset: 150, length: 200, zero: false },
    ]);
    expect(coverRange([], 10, 5)).toEqual([{ offset: 10, length: 5, zero: false }]);
  });
});

describe('readCost', () => {
  it('charges the reply bytes, at least a page', () => {
    const MiB = 1024 * 1024;
    expect(readCost(4096)).toBe(4096);
    expect(readCost(8192)).toBe(8192);
    expect(readCost(32 * MiB)).toBe(32 * MiB);
    expect(readCost(0)).toBe(4096);
    expect(readCost(100)).toBe(4096);
  });
});
