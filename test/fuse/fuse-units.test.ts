// Small pieces of the FUSE layer that need no mount: errno mapping, listing cache, read-ahead.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { BlockReader } from '../../src/core/block-reader.js';
import { CairnError, ErrorCode } from '../../src/core/errors.js';
import { fuseErrnoOf } from '../../src/fuse/errno.js';
import { SequentialReadAhead } from '../../src/fuse/read-ahead.js';
import { TtlCache } from '../../src/fuse/ttl-cache.js';

describe('fuseErrnoOf', () => {
  it('maps every error code to a negative errno, damaged data to EIO', () => {
    for (const code of Object.values(ErrorCode)) expect(fuseErrnoOf(new CairnError(code, 'x'))).toBeLessThan(0);
    expect(fuseErrnoOf(new CairnError('ERR_NOT_FOUND', 'x'))).toBe(-constants.errno.ENOENT);
    expect(fuseErrnoOf(new CairnError('ERR_CHUNK_CORRUPT', 'x'))).toBe(-constants.errno.EIO);
    expect(fuseErrnoOf(new CairnError('ERR_CHUNK_MISSING', 'x'))).toBe(-constants.errno.EIO);
    expect(fuseErrnoOf(Object.assign(new Error('gone'), { code: 'ENOENT' }))).toBe(-constants.errno.ENOENT);
    expect(fuseErrnoOf(new Error('bug'))).toBe(-constants.errno.EIO);
  });
});

describe('TtlCache', () => {
  it('shares one lookup, forgets failures, and expires', async () => {
    const cache = new TtlCache<number>(50);
    let calls = 0;
    const load = async () => ++calls;
    expect(await Promise.all([cache.get('k', load), cache.get('k', load)])).toEqual([1, 1]);
    await expect(cache.get('bad', async () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(await cache.get('bad', async () => 7)).toBe(7);
    await new Promise((r) => setTimeout(r, 60));
    expect(await cache.get('k', load)).toBe(2);
  });
});

describe('SequentialReadAhead', () => {
  function recorder(size: number, blockSize: number): BlockReader & { reads: number[] } {
    const reads: number[] = [];
    return {
      size,
      blockSize,
      reads,
      read: async (offset, length) => (reads.push(offset), Buffer.alloc(length)),
      allocation: async () => [],
    };
  }

  // The read-ahead asks for the allocation first, then reads: let those promises settle.
  const settle = () => new Promise((resolve) => setImmediate(resolve));

  it('fetches the next blocks once reads are sequential, each block once', async () => {
    const reader = recorder(64 * 1024 * 1024, 1024 * 1024);
    const ahead = new SequentialReadAhead(reader);
    ahead.noteRead(0, 131072);
    await settle();
    expect(reader.reads).toEqual([]);
    ahead.noteRead(131072, 131072);
    await settle();
    const first = [...reader.reads];
    expect(first.length).toBeGreaterThan(1);
    expect(first.every((offset) => offset % (1024 * 1024) === 0)).toBe(true);
    ahead.noteRead(262144, 131072);
    await settle();
    expect(reader.reads.length).toBe(first.length); // nothing new within the window
    expect(new Set(reader.reads).size).toBe(reader.reads.length);
  });

  it('does nothing for random reads and stops at the end of the disk', async () => {
    const reader = recorder(3 * 1024 * 1024, 1024 * 1024);
    const ahead = new SequentialReadAhead(reader);
    ahead.noteRead(2 * 1024 * 1024, 4096);
    ahead.noteRead(0, 4096);
    await settle();
    expect(reader.reads).toEqual([]);
    ahead.noteRead(4096, 4096);
    await settle();
    expect(Math.max(...reader.reads)).toBeLessThan(3 * 1024 * 1024);
  });
});

describe('BlockWindow', () => {
  it('answers ranges inside the last block without another read, and reads spans directly', async () => {
    const { BlockWindow } = await import('../../src/fuse/block-window.js');
    const disk = Buffer.alloc(3 * 65536 + 100);
    for (let i = 0; i < disk.length; i++) disk[i] = (i * 13) & 0xff;
    const reads: Array<[number, number]> = [];
    const reader: BlockReader = {
      size: disk.length,
      blockSize: 65536,
      read: async (offset, length) => (reads.push([offset, length]), disk.subarray(offset, offset + length)),
      allocation: async () => [],
    };
    const window = new BlockWindow(reader);
    expect(window.peek(0, 10)).toBeUndefined();
    expect(await window.read(70000, 1000)).toEqual(disk.subarray(70000, 71000));
    expect(reads).toEqual([[65536, 65536]]);
    expect(window.peek(65536, 65536)).toEqual(disk.subarray(65536, 131072));
    expect(window.peek(131000, 1000)).toBeUndefined();
    expect(await window.read(131000, 1000)).toEqual(disk.subarray(131000, 132000));
    expect(reads[1]).toEqual([131000, 1000]);
    expect(await window.read(3 * 65536, 100)).toEqual(disk.subarray(3 * 65536));
    expect(reads[2]).toEqual([3 * 65536, 100]);
  });

  it('answers a hole from zeros without reading it', async () => {
    const { BlockWindow } = await import('../../src/fuse/block-window.js');
    const reads: number[] = [];
    const reader: BlockReader = {
      size: 4 * 65536,
      blockSize: 65536,
      read: async (offset, length) => (reads.push(offset), Buffer.alloc(length, 1)),
      // The second block is a hole.
      allocation: async (offset, length) =>
        [
          { offset: 0, length: 65536, zero: false },
          { offset: 65536, length: 65536, zero: true },
          { offset: 131072, length: 131072, zero: false },
        ].filter((e) => e.offset < offset + length && e.offset + e.length > offset),
    };
    const window = new BlockWindow(reader);
    expect(await window.read(65536 + 100, 1000)).toEqual(Buffer.alloc(1000));
    expect(window.peek(65536, 65536)).toEqual(Buffer.alloc(65536));
    expect(reads).toEqual([]);
    expect(await window.read(131072, 10)).toEqual(Buffer.alloc(10, 1));
    expect(reads).toEqual([131072]);
  });
});

describe('SequentialReadAhead over holes', () => {
  it('skips blocks the index marks as holes', async () => {
    const reads: number[] = [];
    const mib = 1024 * 1024;
    const reader: BlockReader = {
      size: 16 * mib,
      blockSize: mib,
      read: async (offset, length) => (reads.push(offset), Buffer.alloc(length)),
      // Blocks 4-7 are a hole.
      allocation: async (offset, length) =>
        [
          { offset: 0, length: 4 * mib, zero: false },
          { offset: 4 * mib, length: 4 * mib, zero: true },
          { offset: 8 * mib, length: 8 * mib, zero: false },
        ].filter((e) => e.offset < offset + length && e.offset + e.length > offset),
    };
    const ahead = new SequentialReadAhead(reader);
    ahead.noteRead(0, 131072);
    ahead.noteRead(131072, 131072);
    await new Promise((resolve) => setImmediate(resolve));
    expect(reads.length).toBeGreaterThan(4);
    expect(reads.some((offset) => offset >= 4 * mib && offset < 8 * mib)).toBe(false);
  });
});
