// NBD servers that are not a running VM, for pull tests: qemu-nbd (qcow2 with persistent bitmaps)
// and nbdkit (plugins plus its fault-injection filters), each on a temp Unix socket.
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
