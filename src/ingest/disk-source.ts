import type { Extent } from '../core/extent.js';
import type { ChangedBlocks } from '../core/changed-blocks.js';
import type { DiskOrigin } from '../store/manifest.js';

export type { ChangedBlocks };

export interface ExtentPlan {
  /** The repository's chunk size: sources align their reads to it so one read feeds one chunk. */
  chunkSize: number;
  /** True when a base point exists for this disk: `unchanged` extents are allowed. */
  hasBase: boolean;
  /** Size of the disk in the base point, when there is one. */
  baseSize?: number;
  changedBlocks?: ChangedBlocks;
}

/**
 * Where one disk's bytes come from (a file, a block device, stdin, an NBD export…). A source yields
 * the extent stream for a backup: data, zero ranges and ranges unchanged since the base.
 */
export interface DiskSource {
  /** Human-readable origin, stored in the point's source description and used in error messages. */
  readonly description: string;
  /** Disk size in bytes; undefined for a stream (stdin) whose size is known only at its end. */
  readonly size: number | undefined;
  extents(plan: ExtentPlan): AsyncIterable<Extent>;
  /**
   * Called once the range is stored in the repository (every chunk covering it is written), so a
   * source may release it (e.g. NBD_CMD_TRIM on a fleecing export). Calls come in offset order.
   */
  acknowledgeStored?(offset: number, length: number): Promise<void>;
  /**
   * True when acknowledgements release something the source holds (NBD TRIM after read): the writer
   * then keeps unacknowledged ranges few, storing patch bundles early. Otherwise bundles fill up.
   */
  readonly wantsAcknowledgement?: boolean;
  /** The image format the bytes came from (qcow2, VHD, rbd): recorded in the point. */
  readonly origin?: DiskOrigin;
  /** True when the source holds only changes and cannot be read without a base (an rbd diff from a snapshot). */
  readonly needsBase?: boolean;
  /**
   * Checks, before reading, that the base point's disk is the one these changes apply to (an rbd diff
   * from snapshot S needs a base whose recorded toSnap is S); `undefined` when there is no base disk.
   */
  checkBase?(base: { point: string; origin?: DiskOrigin } | undefined): void;
  /** Total bytes the source actually read so far. */
  readonly bytesRead: number;
  close(): Promise<void>;
}
