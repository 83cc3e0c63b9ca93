// NBD servers that are not a running VM, for pull tests: qemu-nbd (qcow2 with persistent bitmaps)
// and nbdkit (plugins plus its fault-injection filters), each on a temp Unix socket.
import net from 'node:net';
import path from 'node:path';
import { run, spawnChild, waitForUnixSocket, type Child } from './qemu-process.js';

export interface NbdPeer {
  child: Child;
  socketPath: string;
  uri: string;
}

let counter = 0;

/** `nbdkit -f -U SOCK [--filter=…] PLUGIN ARGS…`; readiness by polling the socket. */
export async function startNbdkit(dir: string, args: string[], filters: string[] = []): Promise<NbdPeer> {
  const socketPath = path.join(dir, `nbdkit${counter++}.sock`);
  const child = spawnChild('nbdkit', ['-f', '-U', socketPath, ...filters.map((f) => `--filter=${f}`), ...args]);
  await waitForUnixSocket(socketPath, child);
  return { child, socketPath, uri: `nbd+unix:///?socket=${socketPath}` };
}

/** nbdkit on TCP 127.0.0.1 (a free port found by binding port 0 first), for nbd://HOST:PORT/ URIs. */
export async function startNbdkitTcp(args: string[]): Promise<NbdPeer & { port: number }> {
  const port = await new Promise<number>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const child = spawnChild('nbdkit', ['-f', '-i', '127.0.0.1', '-p', String(port), ...args]);
  const until = Date.now() + 20_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createConnection({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (child.proc.exitCode !== null || Date.now() > until) throw new Error(`nbdkit on port ${port} not ready: ${child.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return { child, socketPath: '', port, uri: `nbd://127.0.0.1:${port}/` };
}

/** `qemu-nbd -f qcow2 [-B BITMAP] -k SOCK IMAGE` (read-only, export name empty). */
export async function startQemuNbd(dir: string, image: string, opts: { bitmap?: string } = {}): Promise<NbdPeer> {
  const socketPath = path.join(dir, `qemu-nbd${counter++}.sock`);
  const args = ['-f', 'qcow2', '-r', '-k', socketPath, ...(opts.bitmap ? ['-B', opts.bitmap] : []), image];
  const child = spawnChild('qemu-nbd', args);
  await waitForUnixSocket(socketPath, child);
  return { child, socketPath, uri: `nbd+unix:///?socket=${socketPath}` };
}

/** Writes to an image or an NBD URI with qemu-io (the "guest" of offline tests). */
export async function qemuIo(target: string, format: 'qcow2' | 'raw', ...commands: string[]): Promise<void> {
  await run('qemu-io', ['-f', format, ...commands.flatMap((c) => ['-c', c]), target]);
}

/** The export's bytes as nbdcopy copies them (libnbd: the reference reader). */
export async function nbdcopyToFile(uri: string, file: string): Promise<void> {
  await run('nbdcopy', [uri, file]);
}
