import net from 'node:net';
import { CairnError } from '../../core/errors.js';
import type { NbdEndpoint } from '../../formats/nbd-uri.js';

export function describeEndpoint(endpoint: NbdEndpoint): string {
  return endpoint.transport === 'unix' ? `unix:${endpoint.path}` : `${endpoint.host}:${endpoint.port}`;
}

/**
 * Opens the byte stream to an NBD server. Returns a plain socket; a later TLS issue wraps it after
 * NBD_OPT_STARTTLS (tls.connect({ socket })), which is why negotiation takes the socket it is given.
 */
export function connectSocket(endpoint: NbdEndpoint, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      endpoint.transport === 'unix'
        ? net.createConnection({ path: endpoint.path })
        : net.createConnection({ host: endpoint.host, port: endpoint.port });
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
