export * from './walk.js';
export * from './versions.js';
export * from './tree-restore.js';
export * from './file-digest.js';
