import { isIP } from 'node:net';
import { CairnError } from '../../core/errors.js';
import { NBD_DEFAULT_PORT } from '../protocol/constants.js';

/** Where the NBD server listens: `tcp://HOST:PORT` (IPv6 as `[::1]`) or `unix:PATH`. */
export type NbdListenAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export const DEFAULT_NBD_ADDRESS = `tcp://127.0.0.1:${NBD_DEFAULT_PORT}`;

export function parseListenAddress(text: string): NbdListenAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') throw invalid(text, 'empty socket path');
    return { kind: 'unix', path };
  }
  const match = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/[\]]+)(?::(\d{1,5}))?\/?$/.exec(text);
  if (!match) throw invalid(text, 'expected tcp://HOST:PORT or unix:PATH');
  const host = match[1]!.replace(/^\[(.*)\]$/, '$1');
  const port = match[2] === undefined ? NBD_DEFAULT_PORT : Number(match[2]);
  if (port > 65535) throw invalid(text, 'port out of range');
  return { kind: 'tcp', host, port };
}

/** Loopback hosts and Unix sockets are reachable only from this machine. */
export function isLocalOnly(address: NbdListenAddress): boolean {
  if (address.kind === 'unix') return true;
  const host = address.host.toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

export function formatListenAddress(address: NbdListenAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  return `tcp://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
}

function invalid(text: string, why: string): CairnError {
  return new CairnError('ERR_INVALID_ARGUMENT', `invalid NBD listen address '${text}': ${why}`, { address: text });
}
