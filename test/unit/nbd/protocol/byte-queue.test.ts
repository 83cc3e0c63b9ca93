import { describe, expect, it } from 'vitest';
import { NbdByteQueue } from '../../../../src/nbd/protocol/index.js';
import { isCairnError } from '../../../../src/core/errors.js';

describe('NbdByteQueue', () => {
  it('assembles exact reads across chunk boundaries', async () => {
    const q = new NbdByteQueue();
    const first = q.read(5);
    q.push(Buffer.from('ab'));
    q.push(Buffer.from('cdefg'));
    expect((await first).toString()).toBe('abcde');
    q.push(Buffer.from('h'));
    expect((await q.read(3)).toString()).toBe('fgh');
    expect(q.bufferedBytes).toBe(0);
  });

  it('skips without collecting and reports truncation', async () => {
    const q = new NbdByteQueue();
    const skipped = q.skip(6);
    q.push(Buffer.from('xxxx'));
    q.push(Buffer.from('xxYZ'));
    await skipped;
    expect((await q.read(2)).toString()).toBe('YZ');
    const pending = q.read(10);
    q.push(Buffer.from('abc'));
    q.end();
    const err = await pending.catch((e: unknown) => e);
    expect(isCairnError(err, 'ERR_NBD_PROTOCOL')).toBe(true);
    expect((err as { context: { truncated: boolean } }).context.truncated).toBe(true);
  });

  it('tells a clean close from a truncated message', async () => {
    const q = new NbdByteQueue();
    q.end();
    const err = await q.read(28).catch((e: unknown) => e);
    expect((err as { context: { truncated: boolean } }).context.truncated).toBe(false);
  });

  it('pauses above the high-water mark and resumes when a reader drains it', async () => {
    const events: string[] = [];
    const q = new NbdByteQueue({ highWaterMark: 4, onPause: () => events.push('pause'), onResume: () => events.push('resume') });
    q.push(Buffer.alloc(10));
    expect(events).toEqual(['pause']);
    await q.read(8);
    expect(events).toEqual(['pause', 'resume']);
  });
});
