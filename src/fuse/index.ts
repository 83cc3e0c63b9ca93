// The FUSE tree over restore points (VM/POINT/DISK.raw, DISK/pN.raw, config, VM/latest), served from
// a Catalog's BlockReaders; the only user of fuse-native. Never imports the store.
export { mountCatalog, MAX_READ, type FuseMount, type MountOptions } from './mount.js';
export { NamespaceTree, type TreeNode } from './namespace-tree.js';
export { fuseErrnoOf } from './errno.js';
