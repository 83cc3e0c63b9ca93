// Guest-side views of a disk: partition tables (MBR with logical partitions, GPT with CRC checks and
// backup fallback) and a decorator that serves one partition as a BlockReader. Pure over BlockReader;
// knows nothing of the store. LVM2 volume groups (lvm/) serve logical volumes the same way. Guest
// filesystems for single-file restore will live here too.
export * from './partition-types.js';
export { readPartitionTable, findPartition } from './partition-table.js';
export { PartitionReader, openPartition } from './partition-reader.js';
export * from './lvm/index.js';
