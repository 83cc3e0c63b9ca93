import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  NBD_CLIENT_FLAG,
  NBD_HANDSHAKE_FLAG,
  NBD_INFO,
  NBD_OPT,
  NBD_REP,
  NBD_TRANSMISSION_FLAG,
  decodeExportNameReply,
  decodeRepInfo,
  decodeRepMetaContext,
  decodeRepServer,
  encodeInfoRequest,
  encodeMetaContextRequest,
  encodeOption,
} from '../../../../src/nbd/protocol/index.js';
import { CairnError } from '../../../../src/core/errors.js';
import { DISK_SIZE, serveMemoryCatalog, type Served } from './fixture.js';
import { RawNbdClient } from './raw-client.js';

const OLD = '20261121T000000Z';
const NEW = '20261121T010000Z';

let served: Served;
let clients: RawNbdClient[] = [];

async function connect(): Promise<RawNbdClient> {
  const client = await RawNbdClient.connect(served.socketPath);
  clients.push(client);
  await client.handshake();
  return client;
}

beforeEach(async () => {
  served = await serveMemoryCatalog({ negotiationTimeoutMs: 2000 });
});
afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  await served.dispose();
});

describe('NBD server negotiation', () => {
  it('greets with fixed newstyle and NO_ZEROES', async () => {
    await connect();
    expect(clients[0]!.handshakeFlags).toBe(NBD_HANDSHAKE_FLAG.NBD_FLAG_FIXED_NEWSTYLE | NBD_HANDSHAKE_FLAG.NBD_FLAG_NO_ZEROES);
  });

  it('closes on client flags it did not offer', async () => {
    const client = await RawNbdClient.connect(served.socketPath);
    clients.push(client);
    await client.handshake(NBD_CLIENT_FLAG.NBD_FLAG_C_FIXED_NEWSTYLE | 0x100);
    await client.closed;
  });

  it('lists every point disk and the latest alias', async () => {
    const client = await connect();
    const replies = await client.option(NBD_OPT.NBD_OPT_LIST);
    const names = replies.filter((r) => r.type === NBD_REP.NBD_REP_SERVER).map((r) => decodeRepServer(r.data).exportName);
    expect(names).toEqual([`vm1/${OLD}/sda`, `vm1/${NEW}/sda`, 'vm1/latest/sda']);
    expect(replies[replies.length - 1]!.type).toBe(NBD_REP.NBD_REP_ACK);
    // LIST with data is invalid, and the session goes on.
    expect((await client.option(NBD_OPT.NBD_OPT_LIST, Buffer.from('x')))[0]!.type).toBe(NBD_REP.NBD_REP_ERR_INVALID);
  });

  it('sees points created while it runs', async () => {
    const client = await connect();
    served.catalog.addPoint('vm2', '20261121T020000Z', { sdb: served.older });
    const replies = await client.option(NBD_OPT.NBD_OPT_LIST);
    const names = replies.filter((r) => r.type === NBD_REP.NBD_REP_SERVER).map((r) => decodeRepServer(r.data).exportName);
    expect(names).toContain('vm2/latest/sdb');
  });

  it('answers an option whose catalog lookup fails with an error reply, and the session goes on', async () => {
    const client = await connect();
    const original = served.catalog.listVms.bind(served.catalog);
    served.catalog.listVms = async () => {
      throw new CairnError('ERR_IO', 'disk on fire');
    };
    const failed = await client.option(NBD_OPT.NBD_OPT_LIST);
    expect(failed[failed.length - 1]!.type).toBe(NBD_REP.NBD_REP_ERR_PLATFORM);
    served.catalog.listVms = original;
    const list = await client.option(NBD_OPT.NBD_OPT_LIST);
    expect(list[list.length - 1]!.type).toBe(NBD_REP.NBD_REP_ACK);
  });

  it('answers unknown options with ERR_UNSUP and keeps the session', async () => {
    const client = await connect();
    expect(await client.option(99, Buffer.from('junk'))).toEqual([{ type: NBD_REP.NBD_REP_ERR_UNSUP, data: expect.any(Buffer) }]);
    expect((await client.option(NBD_OPT.NBD_OPT_STARTTLS))[0]!.type).toBe(NBD_REP.NBD_REP_ERR_UNSUP);
    expect((await client.option(NBD_OPT.NBD_OPT_EXTENDED_HEADERS))[0]!.type).toBe(NBD_REP.NBD_REP_ERR_UNSUP);
    const list = await client.option(NBD_OPT.NBD_OPT_LIST);
    expect(list[list.length - 1]!.type).toBe(NBD_REP.NBD_REP_ACK);
  });

  it('describes an export with INFO and enters transmission with GO', async () => {
    const client = await connect();
    const request = encodeInfoRequest({ exportName: 'vm1/latest/sda', infos: [NBD_INFO.NBD_INFO_NAME, NBD_INFO.NBD_INFO_BLOCK_SIZE] });
    const info = await client.option(NBD_OPT.NBD_OPT_INFO, request);
    const infos = info.filter((r) => r.type === NBD_REP.NBD_REP_INFO).map((r) => decodeRepInfo(r.data));
    const exp = infos.find((i) => i.kind === 'export');
    expect(exp).toMatchObject({ kind: 'export', size: DISK_SIZE });
    const flags = (exp as { transmissionFlags: number }).transmissionFlags;
    const f = NBD_TRANSMISSION_FLAG;
    expect(flags & f.NBD_FLAG_READ_ONLY).toBeTruthy();
    expect(flags & f.NBD_FLAG_CAN_MULTI_CONN).toBeTruthy();
    expect(flags & (f.NBD_FLAG_SEND_TRIM | f.NBD_FLAG_SEND_WRITE_ZEROES)).toBe(0);
    expect(infos).toContainEqual({ kind: 'name', name: 'vm1/latest/sda' });
    expect(infos).toContainEqual({ kind: 'block-size', minimum: 1, preferred: 65536, maximum: 32 * 1024 * 1024 });
    expect(infos.some((i) => i.kind === 'description')).toBe(true);
    // INFO stays in negotiation; GO then enters transmission.
    const go = await client.option(NBD_OPT.NBD_OPT_GO, request);
    expect(go[go.length - 1]!.type).toBe(NBD_REP.NBD_REP_ACK);
  });

  it('answers GO for an unknown export with ERR_UNKNOWN and stays usable', async () => {
    const client = await connect();
    for (const name of ['vm1/latest/nope', 'ghost/latest/sda', '', '../../etc/passwd']) {
      const replies = await client.option(NBD_OPT.NBD_OPT_GO, encodeInfoRequest({ exportName: name, infos: [] }));
      expect(replies[0]!.type, name).toBe(NBD_REP.NBD_REP_ERR_UNKNOWN);
    }
    const bad = encodeInfoRequest({ exportName: 'vm1/latest/sda', infos: [] });
    bad.writeUInt32BE(1000, 0);
    expect((await client.option(NBD_OPT.NBD_OPT_GO, bad))[0]!.type).toBe(NBD_REP.NBD_REP_ERR_INVALID);
  });

  it('answers GO, INFO and meta contexts on a damaged export with ERR_POLICY naming the damage, and logs it', async () => {
    const damage = "index vm1/20261121T010000Z/sda.cidx is damaged: it does not match the manifest's digest";
    served.catalog.openDisk = async () => {
      throw new CairnError('ERR_FORMAT_INVALID', damage, { file: 'vm1/20261121T010000Z/sda.cidx' });
    };
    const client = await connect();
    const request = encodeInfoRequest({ exportName: 'vm1/latest/sda', infos: [] });
    for (const option of [NBD_OPT.NBD_OPT_INFO, NBD_OPT.NBD_OPT_GO]) {
      const [reply, ...rest] = await client.option(option, request);
      expect(rest).toHaveLength(0);
      expect(reply!.type, `option ${option}`).toBe(NBD_REP.NBD_REP_ERR_POLICY);
      expect(reply!.data.toString('utf8')).toBe(`export 'vm1/latest/sda' cannot be served: ${damage}`);
    }
    const list = await client.option(
      NBD_OPT.NBD_OPT_LIST_META_CONTEXT,
      encodeMetaContextRequest({ exportName: 'vm1/latest/sda', queries: [] }),
    );
    expect(list[0]!.type).toBe(NBD_REP.NBD_REP_ERR_POLICY);
    // An export that does not exist is still ERR_UNKNOWN, and the session goes on.
    const unknown = await client.option(NBD_OPT.NBD_OPT_GO, encodeInfoRequest({ exportName: 'vm1/latest/nope', infos: [] }));
    expect(unknown[0]!.type).toBe(NBD_REP.NBD_REP_ERR_UNKNOWN);
    expect(served.logs.some((l) => l.level === 'warn' && l.msg === 'NBD export could not be opened')).toBe(true);

    // EXPORT_NAME cannot carry an error: the server hangs up and its log names the damage.
    const old = await connect();
    old.socket.write(encodeOption(NBD_OPT.NBD_OPT_EXPORT_NAME, Buffer.from('vm1/latest/sda')));
    await old.closed;
    const line = served.logs.find((l) => l.level === 'warn' && /NBD_OPT_EXPORT_NAME/.test(l.msg ?? ''));
    expect((line?.obj as { err?: Error } | undefined)?.err?.message).toBe(damage);
  });

  it('answers meta context requests with more than 16 queries with ERR_TOO_BIG, and the session goes on', async () => {
    const client = await connect();
    await client.option(NBD_OPT.NBD_OPT_STRUCTURED_REPLY);
    const queries = Array.from({ length: 17 }, (_, i) => `cairn:changed:${OLD.slice(0, -1)}${i % 10}`);
    for (const option of [NBD_OPT.NBD_OPT_SET_META_CONTEXT, NBD_OPT.NBD_OPT_LIST_META_CONTEXT]) {
      const replies = await client.option(option, encodeMetaContextRequest({ exportName: 'vm1/latest/sda', queries }));
      expect(replies.map((r) => r.type)).toEqual([NBD_REP.NBD_REP_ERR_TOO_BIG]);
    }
    const sixteen = await client.option(
      NBD_OPT.NBD_OPT_SET_META_CONTEXT,
      encodeMetaContextRequest({ exportName: 'vm1/latest/sda', queries: queries.slice(0, 16) }),
    );
    expect(sixteen[sixteen.length - 1]!.type).toBe(NBD_REP.NBD_REP_ACK);
  });

  it('clips option error messages to the 4096 bytes the spec allows', async () => {
    const client = await connect();
    // The message quotes the name; an over-long reply makes libnbd drop the connection.
    const name = `vm1/latest/${'é'.repeat(2040)}`;
    const [reply] = await client.option(NBD_OPT.NBD_OPT_GO, encodeInfoRequest({ exportName: name, infos: [] }));
    expect(reply!.type).toBe(NBD_REP.NBD_REP_ERR_UNKNOWN);
    expect(reply!.data.length).toBeGreaterThan(4000);
    expect(reply!.data.length).toBeLessThanOrEqual(4096);
    expect(reply!.data.toString('utf8')).not.toContain('\ufffd'); // cut between characters, never inside one
  });

  it('serves EXPORT_NAME without padding when NO_ZEROES was agreed, and hangs up on unknown names', async () => {
    const client = await connect();
    client.socket.write(encodeOption(NBD_OPT.NBD_OPT_EXPORT_NAME, Buffer.from(`vm1/${OLD}/sda`)));
    const reply = decodeExportNameReply(await client.queue.read(10));
    expect(reply.size).toBe(DISK_SIZE);
    expect(reply.transmissionFlags & NBD_TRANSMISSION_FLAG.NBD_FLAG_READ_ONLY).toBeTruthy();

    const other = await connect();
    other.socket.write(encodeOption(NBD_OPT.NBD_OPT_EXPORT_NAME, Buffer.from('vm1/latest/none')));
    await other.closed;
  });

  it('lists and selects meta contexts, including cairn:changed', async () => {
    const client = await connect();
    const list = await client.option(
      NBD_OPT.NBD_OPT_LIST_META_CONTEXT,
      encodeMetaContextRequest({ exportName: 'vm1/latest/sda', queries: [] }),
    );
    const listed = list.filter((r) => r.type === NBD_REP.NBD_REP_META_CONTEXT).map((r) => decodeRepMetaContext(r.data));
    expect(listed).toEqual([
      { contextId: 0, name: 'base:allocation' },
      { contextId: 0, name: `cairn:changed:${OLD}` },
    ]);
    // SET before structured replies is invalid.
    const early = await client.option(
      NBD_OPT.NBD_OPT_SET_META_CONTEXT,
      encodeMetaContextRequest({ exportName: 'vm1/latest/sda', queries: ['base:allocation'] }),
    );
    expect(early[0]!.type).toBe(NBD_REP.NBD_REP_ERR_INVALID);
    expect((await client.option(NBD_OPT.NBD_OPT_STRUCTURED_REPLY))[0]!.type).toBe(NBD_REP.NBD_REP_ACK);
    const set = await client.option(
      NBD_OPT.NBD_OPT_SET_META_CONTEXT,
      encodeMetaContextRequest({
        exportName: 'vm1/latest/sda',
        queries: ['qemu:dirty-bitmap:x', 'base:allocation', 'cairn:changed:nosuch', `cairn:changed:${OLD}`, 'base:'],
      }),
    );
    const selected = set.filter((r) => r.type === NBD_REP.NBD_REP_META_CONTEXT).map((r) => decodeRepMetaContext(r.data));
    expect(selected).toEqual([
      { contextId: 1, name: 'base:allocation' },
      { contextId: 2, name: `cairn:changed:${OLD}` },
    ]);
    // A lying query count is ERR_INVALID, not a crash.
    const lying = encodeMetaContextRequest({ exportName: 'vm1/latest/sda', queries: ['base:allocation'] });
    lying.writeUInt32BE(0x7fffffff, 4 + 'vm1/latest/sda'.length);
    expect((await client.option(NBD_OPT.NBD_OPT_LIST_META_CONTEXT, lying))[0]!.type).toBe(NBD_REP.NBD_REP_ERR_INVALID);
  });

  it('refuses oversized option data without buffering it', async () => {
    const client = await connect();
    client.socket.write(encodeOption(NBD_OPT.NBD_OPT_LIST, Buffer.alloc(1024 * 1024)));
    expect((await client.optionReplies())[0]!.type).toBe(NBD_REP.NBD_REP_ERR_TOO_BIG);
    // Over 32 MiB the server hangs up rather than read it.
    const header = encodeOption(NBD_OPT.NBD_OPT_LIST);
    header.writeUInt32BE(0xffffffff, 12);
    client.socket.write(header);
    await client.closed;
  });

  it('drops a client with a bad option magic and one that never finishes the handshake', async () => {
    const client = await connect();
    client.socket.write(Buffer.alloc(16, 0x41));
    await client.closed;
    const idle = await connect();
    await idle.closed; // negotiation timeout (2 s in this test)
    expect(served.logs.some((l) => /did not finish the handshake/.test(l.msg ?? ''))).toBe(true);
  });

  it('ABORT is acknowledged and the connection closes', async () => {
    const client = await connect();
    expect((await client.option(NBD_OPT.NBD_OPT_ABORT))[0]!.type).toBe(NBD_REP.NBD_REP_ACK);
    await client.closed;
  });
});
