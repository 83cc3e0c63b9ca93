/**
 * Which blocks changed since the base point, as a hypervisor's changed-block tracking reports it.
 * Bit n covers bytes [n*blockSize, (n+1)*blockSize).
 */
export interface ChangedBlocks {
  readonly blockSize: number;
  /** Number of blocks the bitmap covers; blocks beyond it are treated as changed. */
  readonly blockCount: number;
  isChanged(blockIndex: number): boolean;
}
