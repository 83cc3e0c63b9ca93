// The read side: the catalog of restore points over the store, random-access disk readers with the
// shared chunk cache, pseudo-URL resolution and restores to files or devices.
export * from './catalog.js';
export * from './disk-reader.js';
export * from './change-map.js';
export * from './open-url.js';
export * from './copy-out.js';
