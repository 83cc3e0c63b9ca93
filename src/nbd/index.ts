// NBD: wire protocol codecs (protocol/), the pull client (client/) and Cairn's read-only export
// server (server/). The server serves BlockReaders resolved from a Catalog; it never sees the store.
export * as nbdProtocol from './protocol/index.js';
export * from './server/index.js';
export * from './client/index.js';
