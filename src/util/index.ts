// Small shared helpers with no domain knowledge: byte sizes and checked 64-bit codecs, the
// byte-bounded cache (the one lru-cache user), atomic file writes, and the optional native addon.
export * from './bytes.js';
export * from './cache.js';
export * from './bounded-cache.js';
export * from './atomic-file.js';
export * from './native.js';
