// Cairn's own NBD client (no NBD library): fixed-newstyle handshake, structured replies, meta
// contexts (base:allocation, qemu:dirty-bitmap:*), READ / BLOCK_STATUS / TRIM over one or more
// connections, with stall timeouts and a bandwidth cap. Used by the pull ingest (src/ingest/nbd-source.ts).
export { NbdClient, NBD_CLIENT_DEFAULTS, type NbdClientOptions } from './nbd-client.js';
export type { StatusExtent } from './connection.js';
export type { NbdBlockSizes, NegotiatedExport } from './negotiate.js';
export { RateLimiter } from './rate-limiter.js';
