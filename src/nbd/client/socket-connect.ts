import net from 'node:net';
import { CairnError } from '../../core/errors.js';
import type { NbdEndpoint } from '../../formats/nbd-uri.js';
import type { SocketReadTarget } from './field-reader.js';

export function describeEndpoint(endpoint: NbdEndpoint): string {
  return endpoint.transport === 'unix' ? `unix:${endpoint.path}` : `${endpoint.host}:${endpoint.port}`;
}

/**
 * Opens the byte stream to an NBD server. Returns a plain socket whose reads go into the buffers
 * `reader` chooses (no 'data' events). A later TLS issue wraps it after NBD_OPT_STARTTLS
 * (tls.connect({ socket })) and feeds the TLS socket's 'data' to the same parser instead.
 */
export function connectSocket(endpoint: NbdEndpoint, timeoutMs: number, reader: SocketReadTarget): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const onread = {
      buffer: () => reader.nextBuffer(),
      callback: (length: number, buffer: Uint8Array) => {
        reader.onRead(length, buffer as Buffer);
        return true;
      },
    };
    const socket =
      endpoint.transport === 'unix'
        ? net.createConnection({ path: endpoint.path, onread })
        : net.createConnection({ host: endpoint.host, port: endpoint.port, onread });
    const where = describeEndpoint(endpoint);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new CairnError('ERR_TIMEOUT', `NBD server ${where} did not accept the connection within ${timeoutMs} ms`, { endpoint: where }),
      );
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      // Requests are small and latency-bound; the spec asks both ends for TCP_NODELAY.
      if (endpoint.transport === 'tcp') socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new CairnError('ERR_IO', `cannot connect to NBD server ${where}: ${err.message}`, { endpoint: where }, { cause: err }));
    });
  });
}
