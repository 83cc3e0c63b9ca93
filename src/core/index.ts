// Domain types and interfaces: extents, block readers, the catalog of restore points, errors.
// Everything else depends on this folder; it depends on nothing.
export * from './errors.js';
export * from './extent.js';
export * from './block-reader.js';
export * from './catalog.js';
export * from './chunk-store.js';
export * from './changed-blocks.js';
export * from './guest-filesystem.js';
