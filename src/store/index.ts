// The chunk store and restore points on a local directory: chunk files, disk indexes, manifests,
// locks, prune, garbage collection, verification and usage figures.
export * from './repository.js';
export * from './repository-config.js';
export * from './fs-chunk-store.js';
export * from './chunk-format.js';
export * from './disk-index.js';
export * from './slot-content.js';
export * from './manifest.js';
export * from './lock.js';
export * from './prune.js';
export * from './gc.js';
export * from './verify.js';
export * from './usage.js';
export * from './point-walk.js';
