import { crc32cUpdate } from '../../../util/crc32c.js';
import type { BTree, TreeRoot } from './btree.js';
import { formatInvalid } from './errors.js';
import { decodeDirItems, type DirItem } from './items.js';
import { key } from './keys.js';
import { DIR_ITEM, KEY_TYPE, OBJECTID } from './layout.js';

/** btrfs_name_hash: the raw crc32c register from ~1 over the name (no final inversion), the DIR_ITEM key offset. */
export function nameHash(name: Uint8Array): number {
  return crc32cUpdate(0xfffffffe, name);
}

export interface DirEntryRecord extends DirItem {
  /** The DIR_INDEX sequence number (the listing order). */
  readonly index: bigint;
}

/**
 * Directory listings and lookups ("Directories" in the on-disk format). A listing walks the
 * DIR_INDEX items in index order, a leaf at a time, so memory is one leaf whatever the directory's
 * size; it stops with an error once the names outgrow the directory's i_size (which counts every
 * name twice: once per DIR_ITEM and once per DIR_INDEX). A lookup hashes the name to its DIR_ITEM
 * and compares the names packed there (hash collisions share that item).
 */
export class Directories {
  constructor(
    private readonly btree: BTree,
    private readonly volume: string,
  ) {}

  async *entries(tree: TreeRoot, dir: bigint, dirSize: number): AsyncGenerator<DirEntryRecord[]> {
    const where = `${tree.what} directory ${dir}`;
    let budget = dirSize;
    const from = key(dir, KEY_TYPE.DIR_INDEX, 0n);
    const to = key(dir, KEY_TYPE.DIR_INDEX, OBJECTID.MAX_U64);
    for await (const span of this.btree.range(tree, from, to)) {
      const out: DirEntryRecord[] = [];
      const { leaf } = span;
      for (let slot = span.start; slot < span.end; slot++) {
        const bytes = leaf.raw.subarray(leaf.dataStart[slot], leaf.dataStart[slot]! + leaf.dataSize[slot]!);
        const items = decodeDirItems(bytes, this.volume, `${where} index ${leaf.offsets[slot]}`);
        // A DIR_INDEX item holds exactly one entry (only DIR_ITEMs pack colliding names).
        if (items.length !== 1) throw formatInvalid(this.volume, `${where} index ${leaf.offsets[slot]}`, `holds ${items.length} entries`);
        const item = items[0]!;
        budget -= 2 * item.name.length;
        if (budget < 0) throw formatInvalid(this.volume, where, `lists more names than its size of ${dirSize} bytes holds`);
        out.push({ ...item, name: Buffer.from(item.name), index: leaf.offsets[slot]! });
      }
      if (out.length > 0) yield out;
    }
  }

  async lookup(tree: TreeRoot, dir: bigint, name: Buffer): Promise<DirItem | undefined> {
    if (name.length === 0 || name.length > DIR_ITEM.MAX_NAME_LEN) return undefined;
    const found = await this.btree.find(tree, key(dir, KEY_TYPE.DIR_ITEM, BigInt(nameHash(name))));
    if (!found) return undefined;
    const { leaf, slot } = found;
    const bytes = leaf.raw.subarray(leaf.dataStart[slot], leaf.dataStart[slot]! + leaf.dataSize[slot]!);
    const item = decodeDirItems(bytes, this.volume, `${tree.what} directory ${dir} name hash ${leaf.offsets[slot]}`).find((d) =>
      d.name.equals(name),
    );
    return item ? { ...item, name: Buffer.from(item.name) } : undefined;
  }
}
