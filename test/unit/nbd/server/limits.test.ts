import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CairnError, ErrorCode } from '../../../../src/core/errors.js';
import { NBD_ERROR, NBD_REP } from '../../../../src/nbd/protocol/index.js';
import { ByteBudget } from '../../../../src/nbd/server/byte-budget.js';
import { ConnectionSlots, clientKey } from '../../../../src/nbd/server/connection-slots.js';
import { NbdServer, ExportRegistry } from '../../../../src/nbd/server/index.js';
import { openFailureReply, toNbdError } from '../../../../src/nbd/server/nbd-errors.js';
import { RequestAdmission } from '../../../../src/nbd/server/request-admission.js';
import { MemoryCatalog } from './memory-catalog.js';

const settled = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
};

describe('RequestAdmission', () => {
  it('admits at once within the count and every budget, and waits beyond either', async () => {
    const own = new ByteBudget(10_000);
    const shared = new ByteBudget(100_000);
    const admission = new RequestAdmission(2, [own, shared]);
    expect(admission.admit(4000)).toBeUndefined();
    expect(admission.admit(4000)).toBeUndefined();
    const third = admission.admit(1)!; // the count is full
    expect(await settled(third)).toBe(false);
    admission.finish(4000);
    expect(await settled(third)).toBe(true);
    expect(admission.inFlight).toBe(2);
    expect([own.inUse, shared.inUse]).toEqual([4001, 4001]);
    const tooBig = admission.admit(9000); // the connection's budget is full (count is too)
    admission.finish(1);
    expect(await settled(tooBig!)).toBe(false);
    admission.finish(4000);
    expect(await settled(tooBig!)).toBe(true);
    expect([own.inUse, shared.inUse, admission.inFlight]).toEqual([9000, 9000, 1]);
  });

  it('counts reply bytes charged beyond the reservation: over the limit, nothing more is admitted until they are refunded', async () => {
    const budget = new ByteBudget(10_000);
    const admission = new RequestAdmission(100, [budget]);
    expect(admission.admit(1000)).toBeUndefined();
    admission.charge(50_000); // a large block status reply, already built
    expect(budget.inUse).toBe(51_000);
    const next = admission.admit(1000)!;
    expect(await settled(next)).toBe(false);
    admission.refund(50_000);
    expect(await settled(next)).toBe(true);
    const idle = admission.idle();
    admission.finish(1000);
    expect(await settled(idle)).toBe(false);
    admission.finish(1000);
    expect(await settled(idle)).toBe(true);
    expect(budget.inUse).toBe(0);
  });
});

describe('ConnectionSlots', () => {
  it('evicts the oldest handshake in the scope that is full, and refuses only when all there are attached', () => {
    const slots = new ConnectionSlots<string>(4, 2);
    const add = (conn: string, client: string): ReturnType<typeof slots.admit> => {
      const decision = slots.admit(client);
      if (decision.admitted) slots.add(conn, client);
      return decision;
    };
    expect(add('a1', 'A')).toEqual({ admitted: true, evicted: undefined });
    expect(add('a2', 'A')).toEqual({ admitted: true, evicted: undefined });
    // A is at its share: its own oldest handshake gives way, nobody else's.
    expect(add('b1', 'B')).toEqual({ admitted: true, evicted: undefined });
    expect(add('a3', 'A')).toEqual({ admitted: true, evicted: 'a1' });
    slots.attached('a2');
    slots.attached('a3');
    expect(add('a4', 'A')).toEqual({ admitted: false, full: 'client' });
    expect(add('c1', 'C')).toEqual({ admitted: true, evicted: undefined });
    // The server is full: the oldest handshake anywhere (b1) goes.
    expect(add('d1', 'D')).toEqual({ admitted: true, evicted: 'b1' });
    slots.attached('c1');
    slots.attached('d1');
    expect(add('e1', 'E')).toEqual({ admitted: false, full: 'server' });
    slots.release('a2');
    slots.release('a2');
    expect(slots.size).toBe(3);
    expect(add('e1', 'E')).toEqual({ admitted: true, evicted: undefined });
  });

  it('groups peers by IPv4 address, IPv6 /64, and all Unix-socket peers together', () => {
    expect(clientKey('tcp', '192.0.2.7')).toBe('192.0.2.7');
    expect(clientKey('tcp', '::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(clientKey('tcp', '2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('tcp', '2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(clientKey('tcp', '2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('tcp', '::1')).toBe('0:0:0:0::/64');
    expect(clientKey('tcp', 'fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(clientKey('unix', undefined)).toBe('unix');
    expect(clientKey('tcp', undefined)).toBe('tcp:unknown');
  });
});

describe('NBD error tables', () => {
  it('map every Cairn error code: damage is EIO, caller mistakes EINVAL, and never 0', () => {
    for (const code of Object.values(ErrorCode)) {
      const err = new CairnError(code, 'x');
      expect(toNbdError(err), code).not.toBe(0);
      expect([NBD_REP.NBD_REP_ERR_UNKNOWN, NBD_REP.NBD_REP_ERR_POLICY], code).toContain(openFailureReply(err));
    }
    expect(toNbdError(new CairnError('ERR_CHUNK_CORRUPT', 'x'))).toBe(NBD_ERROR.NBD_EIO);
    expect(toNbdError(new CairnError('ERR_OUT_OF_RANGE', 'x'))).toBe(NBD_ERROR.NBD_EINVAL);
    expect(toNbdError(new CairnError('ERR_READ_ONLY', 'x'))).toBe(NBD_ERROR.NBD_EPERM);
    expect(toNbdError(new CairnError('ERR_NO_SPACE', 'x'))).toBe(NBD_ERROR.NBD_ENOSPC);
    expect(toNbdError(Object.assign(new Error('x'), { code: 'ENOMEM' }))).toBe(NBD_ERROR.NBD_ENOMEM);
    expect(toNbdError(new Error('a bug'))).toBe(NBD_ERROR.NBD_EIO);
    expect(openFailureReply(new CairnError('ERR_NOT_FOUND', 'x'))).toBe(NBD_REP.NBD_REP_ERR_UNKNOWN);
    expect(openFailureReply(new CairnError('ERR_FORMAT_INVALID', 'x'))).toBe(NBD_REP.NBD_REP_ERR_POLICY);
  });
});

describe('NbdServer.listen failures', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-nbd-listen-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const server = (): NbdServer => new NbdServer({ registry: new ExportRegistry(new MemoryCatalog()) });
  const failure = async (path: string): Promise<CairnError> => {
    const s = server();
    try {
      return (await s.listen({ kind: 'unix', path }).then(
        () => undefined,
        (e: unknown) => e,
      )) as CairnError;
    } finally {
      await s.close();
    }
  };

  it('names a missing socket directory (libuv says EACCES) and a path under a file', async () => {
    const missing = await failure(join(dir, 'nope', 's.sock'));
    expect(missing).toMatchObject({
      code: 'ERR_NOT_FOUND',
      message: `cannot listen on unix:${join(dir, 'nope', 's.sock')}: directory ${join(dir, 'nope')} does not exist`,
    });
    writeFileSync(join(dir, 'file'), '');
    const underFile = await failure(join(dir, 'file', 's.sock'));
    expect(underFile).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringMatching(/file is not a directory$/) });
  });

  it('tells a live socket from a file in the way, and a TCP port in use', async () => {
    const live = server();
    await live.listen({ kind: 'unix', path: join(dir, 'live.sock') });
    expect((await failure(join(dir, 'live.sock'))).message).toMatch(/another server is listening on that socket$/);
    await live.close();
    writeFileSync(join(dir, 'plain'), '');
    expect((await failure(join(dir, 'plain'))).message).toMatch(/plain exists and is not a socket$/);

    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    const s = server();
    const err = (await s.listen({ kind: 'tcp', host: '127.0.0.1', port }).catch((e: unknown) => e)) as CairnError;
    await s.close();
    holder.close();
    expect(err).toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
      message: `cannot listen on tcp://127.0.0.1:${port}: the address is already in use (another server is listening there)`,
    });
  });
});
