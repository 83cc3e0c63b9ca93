import { CairnError } from '../core/errors.js';

/**
 * NBD URIs as qemu, libnbd and nbdkit write them (NetworkBlockDevice/nbd doc/uri.md):
 *   nbd://HOST[:PORT]/EXPORT           TCP, port defaults to the IANA port 10809
 *   nbd+unix:///EXPORT?socket=PATH     Unix domain socket
 *   nbds://…, nbds+unix://…            the same, TLS required (parsed here; refused by the client for now)
 * The export name is the path without its leading '/', percent-decoded; it may be empty.
 */
export const NBD_URI_SCHEMES = {
  nbd: { transport: 'tcp', tls: false },
  nbds: { transport: 'tcp', tls: true },
  'nbd+unix': { transport: 'unix', tls: false },
  'nbds+unix': { transport: 'unix', tls: true },
} as const;

export const NBD_DEFAULT_PORT = 10809;

export type NbdEndpoint = { transport: 'tcp'; host: string; port: number } | { transport: 'unix'; path: string };

export interface NbdUri {
  endpoint: NbdEndpoint;
  exportName: string;
  /** TLS was demanded by the scheme (nbds, nbds+unix). */
  tls: boolean;
  /** Every query parameter, including `socket` and `tls-*` ones, for later TLS options. */
  query: Record<string, string>;
}

/** Quick test used by source factories to route a disk spec. */
export function isNbdUri(text: string): boolean {
  return /^nbds?(\+unix)?:\/\//i.test(text);
}

function invalid(uri: string, why: string): CairnError {
  return new CairnError('ERR_INVALID_ARGUMENT', `invalid NBD URI ${JSON.stringify(uri)}: ${why}`, { uri });
}

export function parseNbdUri(uri: string): NbdUri {
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(uri);
  if (!schemeMatch) throw invalid(uri, 'expected nbd://, nbds://, nbd+unix:// or nbds+unix://');
  const scheme = schemeMatch[1]!.toLowerCase();
  if (!Object.hasOwn(NBD_URI_SCHEMES, scheme)) throw invalid(uri, `unknown scheme ${scheme}`);
  const kind = NBD_URI_SCHEMES[scheme as keyof typeof NBD_URI_SCHEMES];

  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw invalid(uri, 'not a URI');
  }
  if (url.hash) throw invalid(uri, 'a fragment is not allowed');

  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (Object.hasOwn(query, key)) throw invalid(uri, `query parameter ${key} given twice`);
    query[key] = value;
  }

  let exportName: string;
  try {
    exportName = decodeURIComponent(url.pathname.startsWith('/') ? url.pathname.slice(1) : url.pathname);
  } catch {
    throw invalid(uri, 'bad percent-encoding in the export name');
  }
  if (exportName.includes('\0')) throw invalid(uri, 'the export name contains NUL');
  // The spec caps strings at 4096 bytes; checked here so the error names the URI, not a handshake.
  if (Buffer.byteLength(exportName) > 4096) throw invalid(uri, 'the export name is longer than 4096 bytes');

  if (kind.transport === 'unix') {
    const socketPath = query['socket'];
    if (!socketPath) throw invalid(uri, 'nbd+unix needs ?socket=PATH');
    if (url.host) throw invalid(uri, 'a Unix socket URI takes no host (write nbd+unix:///EXPORT?socket=PATH)');
    return { endpoint: { transport: 'unix', path: socketPath }, exportName, tls: kind.tls, query };
  }

  let host = url.hostname;
  if (!host) throw invalid(uri, 'a TCP URI needs a host');
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  let port = NBD_DEFAULT_PORT;
  if (url.port) {
    port = Number(url.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(uri, `bad port ${url.port}`);
  }
  return { endpoint: { transport: 'tcp', host, port }, exportName, tls: kind.tls, query };
}

/** The URI back as text, for descriptions and logs (query kept, so it round-trips). */
export function formatNbdUri(parsed: NbdUri): string {
  const path = '/' + encodeURIComponent(parsed.exportName).replace(/%2F/g, '/');
  const params = new URLSearchParams(parsed.query).toString();
  const query = params ? `?${params}` : '';
  if (parsed.endpoint.transport === 'unix') return `${parsed.tls ? 'nbds' : 'nbd'}+unix://${path}${query}`;
  const host = parsed.endpoint.host.includes(':') ? `[${parsed.endpoint.host}]` : parsed.endpoint.host;
  return `${parsed.tls ? 'nbds' : 'nbd'}://${host}:${parsed.endpoint.port}${path}${query}`;
}

/**
 * Xen export names carry a session token (`/VDI-UUID?session_id=OpaqueRef:…`): mask it wherever an
 * export name or URI is shown, stored or logged.
 */
export function redactNbdSecrets(text: string): string {
  return text.replace(/(session_id(?:=|%3D))[^&/?"\s]+/gi, '$1***');
}
