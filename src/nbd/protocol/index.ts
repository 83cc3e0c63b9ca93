// NBD wire protocol: constants with the spec's names and pure codecs for the handshake, options,
// option replies, requests and replies, plus the exact-length framing reader both ends use.
// Shared by the server (src/nbd/server) and the client (src/nbd/client).
export * from './constants.js';
export * from './wire.js';
export * from './handshake.js';
export * from './option.js';
export * from './option-reply.js';
export * from './request.js';
export * from './reply.js';
export * from './byte-queue.js';
