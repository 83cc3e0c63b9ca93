import { CairnError } from '../core/errors.js';
import type { Extent } from '../core/extent.js';
import type { DiskOrigin } from '../store/manifest.js';
import type { DiskSource, ExtentPlan } from './disk-source.js';
import type { ImageLayer } from './image-layer.js';
import { layeredExtents } from './layered-extents.js';

/**
 * A qcow2 or VHD image file (with its backing chain) as a disk source. Without a base point the
 * chain is read as one flattened disk; with one, whatever the top image does not hold itself is
 * `unchanged` (the overlay's backing file is the image the base point was made from), so only the
 * top image's own clusters or blocks are read.
 */
export class ImageSource implements DiskSource {
  constructor(
    private readonly top: ImageLayer,
    readonly origin: DiskOrigin,
  ) {}

  get description(): string {
    return this.top.description;
  }

  get size(): number {
    return this.top.size;
  }

  get bytesRead(): number {
    return this.top.bytesRead;
  }

  checkBase(base: { point: string; origin?: DiskOrigin } | undefined): void {
    this.top.checkBase?.(base);
  }

  extents(plan: ExtentPlan): AsyncIterable<Extent> {
    if (plan.changedBlocks) {
      throw new CairnError(
        'ERR_INVALID_ARGUMENT',
        `${this.top.path} is a ${this.origin.format} image: its own allocation says what changed; --changed-blocks applies to raw sources only`,
      );
    }
    return layeredExtents(this.top, plan);
  }

  close(): Promise<void> {
    return this.top.close();
  }
}
