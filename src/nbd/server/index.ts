// Cairn's read-only NBD server: fixed newstyle handshake, structured replies, block status
// (`base:allocation`, `cairn:changed:POINT`) over BlockReaders resolved from a Catalog.
export * from './export-registry.js';
export * from './meta-contexts.js';
export * from './nbd-server.js';
export * from './listen-address.js';
export * from './nbd-logger.js';
export { exportTransmissionFlags } from './negotiation.js';
export { toNbdError } from './nbd-errors.js';
