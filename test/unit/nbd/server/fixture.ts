import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExportRegistry, NbdServer, type NbdLogger, type NbdServerOptions } from '../../../../src/nbd/server/index.js';
import { MemoryCatalog, MemoryDisk } from './memory-catalog.js';

export const BLOCK = 64 * 1024;
export const DISK_SIZE = 16 * BLOCK;

/** Blocks: 0 = 0xaa, 1 = hole, 2..3 = counting bytes, 4..14 = hole, 15 = 0x55. */
export function olderDisk(): Buffer {
  const data = Buffer.alloc(DISK_SIZE);
  data.fill(0xaa, 0, BLOCK);
  for (let i = 2 * BLOCK; i < 4 * BLOCK; i++) data[i] = i % 251;
  data.fill(0x55, 15 * BLOCK);
  return data;
}

/** The newer point differs from the older one in block 3 and block 7. */
export function newerDisk(): Buffer {
  const data = olderDisk();
  data.fill(0x33, 3 * BLOCK, 4 * BLOCK);
  data.fill(0x77, 7 * BLOCK, 8 * BLOCK);
  return data;
}

export interface LogLine {
  level: string;
  obj: object;
  msg?: string;
}

export function capturingLogger(lines: LogLine[]): NbdLogger {
  const make = (): NbdLogger => ({
    debug: (obj, msg) => lines.push({ level: 'debug', obj, msg }),
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
    child: () => make(),
  });
  return make();
}

export interface Served {
  catalog: MemoryCatalog;
  older: MemoryDisk;
  newer: MemoryDisk;
  server: NbdServer;
  socketPath: string;
  logs: LogLine[];
  dispose: () => Promise<void>;
}

export async function serveMemoryCatalog(options: Partial<NbdServerOptions> = {}): Promise<Served> {
  const catalog = new MemoryCatalog();
  const older = new MemoryDisk(olderDisk(), BLOCK);
  const newer = new MemoryDisk(newerDisk(), BLOCK);
  catalog.addPoint('vm1', '20261121T000000Z', { sda: older });
  catalog.addPoint('vm1', '20261121T010000Z', { sda: newer });
  const logs: LogLine[] = [];
  const server = new NbdServer({
    registry: new ExportRegistry(catalog),
    log: capturingLogger(logs),
    ...options,
  });
  const dir = mkdtempSync(join(tmpdir(), 'cairn-nbd-'));
  const socketPath = join(dir, 'nbd.sock');
  await server.listen({ kind: 'unix', path: socketPath });
  return {
    catalog,
    older,
    newer,
    server,
    socketPath,
    logs,
    dispose: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
