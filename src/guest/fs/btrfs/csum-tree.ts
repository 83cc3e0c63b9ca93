import type { BTree, TreeRoot } from './btree.js';
import { formatInvalid } from './errors.js';
import { key } from './keys.js';
import { KEY_TYPE, OBJECTID } from './layout.js';

/** The data checksums of a sector-aligned logical range: `sums` holds csum_size bytes per sector, `present` marks which were found. */
export interface RangeChecksums {
  readonly sums: Buffer;
  readonly present: Uint8Array;
}

/**
 * Data checksums from the csum tree ("Checksum tree"): items keyed (EXTENT_CSUM, EXTENT_CSUM,
 * logical address of their first sector), each an array of one checksum per sector from there.
 */
export class CsumTree {
  constructor(
    private readonly btree: BTree,
    private readonly tree: TreeRoot | undefined,
    private readonly sectorSize: number,
    private readonly csumSize: number,
    private readonly volume: string,
  ) {}

  async lookup(logical: number, length: number): Promise<RangeChecksums> {
    const sectors = length / this.sectorSize;
    const sums = Buffer.alloc(sectors * this.csumSize);
    const present = new Uint8Array(sectors);
    if (!this.tree || sectors === 0) return { sums, present };
    const end = logical + length;
    const before = await this.btree.lastKeyAtOrBefore(this.tree, key(OBJECTID.EXTENT_CSUM, KEY_TYPE.EXTENT_CSUM, BigInt(logical)));
    const from = before && before.objectid === OBJECTID.EXTENT_CSUM && before.type === KEY_TYPE.EXTENT_CSUM ? before.offset : 0n;
    const to = key(OBJECTID.EXTENT_CSUM, KEY_TYPE.EXTENT_CSUM, BigInt(end - 1));
    for await (const span of this.btree.range(this.tree, key(OBJECTID.EXTENT_CSUM, KEY_TYPE.EXTENT_CSUM, from), to)) {
      const { leaf } = span;
      for (let slot = span.start; slot < span.end; slot++) {
        const start = leaf.offsets[slot]!;
        const size = leaf.dataSize[slot]!;
        if (size % this.csumSize !== 0 || start % BigInt(this.sectorSize) !== 0n || start > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw formatInvalid(this.volume, `checksum item at ${start}`, `${size} bytes of sums at an unaligned address`);
        }
        const first = Number(start);
        const count = size / this.csumSize;
        const lo = Math.max(first, logical);
        const hi = Math.min(first + count * this.sectorSize, end);
        for (let at = lo; at < hi; at += this.sectorSize) {
          const src = leaf.dataStart[slot]! + ((at - first) / this.sectorSize) * this.csumSize;
          const dst = (at - logical) / this.sectorSize;
          leaf.raw.copy(sums, dst * this.csumSize, src, src + this.csumSize);
          present[dst] = 1;
        }
      }
    }
    return { sums, present };
  }
}
