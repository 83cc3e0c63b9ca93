import type { GuestDirEntry } from '../../../core/guest-filesystem.js';
import type { BTree, TreeRoot } from './btree.js';
import { formatInvalid } from './errors.js';
import { fileTypeName, type DirItem } from './items.js';
import { key } from './keys.js';
import { INODE_REF, KEY_TYPE, OBJECTID } from './layout.js';
import { packId } from './node-ids.js';
import type { Subvolumes } from './subvolumes.js';

/**
 * Turns directory items into entries, deciding where each leads:
 * - an inode of the same subvolume; a directory must name this directory as its one parent
 *   (its single INODE_REF), so directories form a tree and no walk can loop;
 * - the root of another subvolume, when the root tree links it here (Subvolumes.linked);
 * - otherwise, for an entry naming a subvolume, the empty placeholder the kernel shows (a snapshot
 *   keeps its nested subvolumes' entries, not their contents).
 */
export class EntryResolver {
  constructor(
    private readonly btree: BTree,
    private readonly subvolumes: Subvolumes,
    private readonly volume: string,
  ) {}

  async resolve(tree: TreeRoot, treeId: bigint, dir: bigint, item: DirItem): Promise<GuestDirEntry> {
    const where = `${tree.what} directory ${dir} entry ${JSON.stringify(item.name.toString('latin1'))}`;
    const { location } = item;
    const type = fileTypeName(item.fileType);
    if (location.type === KEY_TYPE.INODE_ITEM) {
      const target = location.objectid;
      if (target < OBJECTID.FIRST_FREE || target > OBJECTID.LAST_FREE || target === dir) {
        throw formatInvalid(this.volume, where, `points at invalid inode ${target}`);
      }
      if (type === 'dir') await this.checkParent(tree, dir, target, where);
      return { name: item.name, id: packId({ kind: 'inode', tree: treeId, objectid: target }), ...(type ? { type } : {}) };
    }
    if (location.type === KEY_TYPE.ROOT_ITEM) {
      const child = location.objectid;
      if (await this.subvolumes.linked(treeId, child, dir, item.name)) {
        return { name: item.name, id: packId({ kind: 'inode', tree: child, objectid: OBJECTID.FIRST_FREE }), type: 'dir' };
      }
      return {
        name: item.name,
        id: packId({ kind: 'placeholder', tree: treeId, dir, subvolume: child }),
        type: 'dir',
      };
    }
    throw formatInvalid(this.volume, where, `location key type ${location.type} is neither an inode nor a subvolume`);
  }

  /** A directory has exactly one name: one INODE_REF item with one entry, naming `parent`. */
  private async checkParent(tree: TreeRoot, parent: bigint, child: bigint, where: string): Promise<void> {
    let refs = 0;
    let named = false;
    const from = key(child, KEY_TYPE.INODE_REF, 0n);
    const to = key(child, KEY_TYPE.INODE_EXTREF, OBJECTID.MAX_U64);
    for await (const span of this.btree.range(tree, from, to)) {
      for (let slot = span.start; slot < span.end; slot++) {
        refs++;
        const size = span.leaf.dataSize[slot]!;
        const single =
          size >= INODE_REF.SIZE && size === INODE_REF.SIZE + span.leaf.raw.readUInt16LE(span.leaf.dataStart[slot]! + INODE_REF.name_len);
        named = span.leaf.types[slot] === KEY_TYPE.INODE_REF && span.leaf.offsets[slot] === parent && single;
      }
      if (refs > 1) break;
    }
    if (refs !== 1 || !named) {
      throw formatInvalid(
        this.volume,
        where,
        `directory ${child} does not name directory ${parent} as its only parent (a loop or a second link)`,
      );
    }
  }
}
