export * from './nodes.js';
export * from './namespace.js';
export * from './point-view.js';
export * from './guest-file-reader.js';
