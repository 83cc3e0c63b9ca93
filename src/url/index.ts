// Pseudo-URLs `cairn://VM/POINT/DISK[/PARTITION[/PATH]]`: the one naming scheme shared by every
// command, the NBD export names and the FUSE tree.
export * from './cairn-url.js';
