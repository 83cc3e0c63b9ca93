import { BoundedCache } from '../../../util/bounded-cache.js';
import type { BTree, TreeRoot } from './btree.js';
import { nameHash } from './directory.js';
import { formatInvalid } from './errors.js';
import { decodeDirItems, decodeRootItem, decodeRootRef, type RootItem } from './items.js';
import { key } from './keys.js';
import { KEY_TYPE, OBJECTID } from './layout.js';
import type { TreeNode } from './tree-block.js';

/** A subvolume (or snapshot): its id in the root tree and its FS tree. */
export interface Subvolume {
  readonly id: bigint;
  readonly tree: TreeRoot;
  readonly item: RootItem;
}

/** Parent links followed at most this far up when checking that a subvolume hangs off the top. */
const MAX_NESTING = 4096;
const DEFAULT_NAME = Buffer.from('default');

export const isSubvolumeId = (id: bigint): boolean => id === OBJECTID.FS_TREE || (id >= OBJECTID.FIRST_FREE && id <= OBJECTID.LAST_FREE);

const data = (leaf: TreeNode, slot: number): Buffer =>
  leaf.raw.subarray(leaf.dataStart[slot], leaf.dataStart[slot]! + leaf.dataSize[slot]!);

/**
 * The subvolumes of the root tree ("Root tree" and "ROOT_REF / ROOT_BACKREF" in the on-disk format):
 * finds a subvolume's FS tree, the default subvolume, and decides whether a directory entry that
 * names a subvolume really links it there. A subvolume is linked when its parent's ROOT_REF names
 * that directory and name, its single ROOT_BACKREF names that parent, and its chain of parents
 * reaches the top level: then subvolumes form a tree and no walk through them can loop.
 */
export class Subvolumes {
  private readonly roots: BoundedCache<bigint, { sub: Subvolume | undefined }>;
  private readonly parents: BoundedCache<bigint, { parent: bigint | undefined }>;
  private readonly anchored: BoundedCache<bigint, { ok: boolean }>;

  constructor(
    private readonly btree: BTree,
    private readonly rootTree: TreeRoot,
    private readonly name: string,
    cacheBytes: number,
  ) {
    this.roots = new BoundedCache(Math.floor(cacheBytes / 2), () => 600);
    this.parents = new BoundedCache(Math.floor(cacheBytes / 4), () => 100);
    this.anchored = new BoundedCache(Math.floor(cacheBytes / 4), () => 100);
  }

  /** The live subvolume `id`, or undefined (no root item, or one being deleted). */
  async get(id: bigint): Promise<Subvolume | undefined> {
    if (!isSubvolumeId(id)) return undefined;
    return (await this.roots.get(id, async () => ({ sub: await this.load(id) }))).sub;
  }

  private async load(id: bigint): Promise<Subvolume | undefined> {
    const found = await this.rootItem(id);
    if (!found) return undefined;
    const { item, where } = found;
    if (item.refs === 0) return undefined;
    if (item.rootDirid !== OBJECTID.FIRST_FREE) throw formatInvalid(this.name, where, `root directory ${item.rootDirid} is not 256`);
    return { id, item, tree: { bytenr: item.bytenr, level: item.level, generation: item.generation, what: `subvolume ${id}` } };
  }

  /** Where an internal tree (the checksum tree) starts, or undefined when the root tree has none. */
  async treeRoot(id: bigint, what: string): Promise<TreeRoot | undefined> {
    const found = await this.rootItem(id);
    return found ? { bytenr: found.item.bytenr, level: found.item.level, generation: found.item.generation, what } : undefined;
  }

  private async rootItem(id: bigint): Promise<{ item: RootItem; where: string } | undefined> {
    // Root items are keyed (id, ROOT_ITEM, transid of creation for snapshots): the newest one counts.
    const last = await this.btree.lastKeyAtOrBefore(this.rootTree, key(id, KEY_TYPE.ROOT_ITEM, OBJECTID.MAX_U64));
    if (!last || last.objectid !== id || last.type !== KEY_TYPE.ROOT_ITEM) return undefined;
    const found = await this.btree.find(this.rootTree, last);
    if (!found) return undefined;
    const where = `root item of tree ${id}`;
    return { item: decodeRootItem(data(found.leaf, found.slot), this.name, where), where };
  }

  /** The subvolume mounted by default: the root tree's "default" directory item, else the top level (5). */
  async defaultId(): Promise<bigint> {
    const dirKey = key(OBJECTID.ROOT_TREE_DIR, KEY_TYPE.DIR_ITEM, BigInt(nameHash(DEFAULT_NAME)));
    const found = await this.btree.find(this.rootTree, dirKey);
    if (!found) return OBJECTID.FS_TREE;
    const where = 'root tree default subvolume item';
    const item = decodeDirItems(data(found.leaf, found.slot), this.name, where).find((d) => d.name.equals(DEFAULT_NAME));
    if (!item || item.location.objectid === 0n) return OBJECTID.FS_TREE;
    if (!(await this.get(item.location.objectid))) {
      throw formatInvalid(this.name, where, `names subvolume ${item.location.objectid}, which does not exist`);
    }
    return item.location.objectid;
  }

  /** True when directory `dirid` of subvolume `parent` links subvolume `child` under `name`. */
  async linked(parent: bigint, child: bigint, dirid: bigint, name: Buffer): Promise<boolean> {
    if (child === OBJECTID.FS_TREE || child === parent || !isSubvolumeId(child)) return false;
    const ref = await this.btree.find(this.rootTree, key(parent, KEY_TYPE.ROOT_REF, child));
    if (!ref) return false;
    const decoded = decodeRootRef(data(ref.leaf, ref.slot), this.name, `root ref ${parent} -> ${child}`);
    if (decoded.dirid !== dirid || !decoded.name.equals(name)) return false;
    if ((await this.parentOf(child)) !== parent) return false;
    return (await this.isAnchored(child)) && (await this.get(child)) !== undefined;
  }

  /** The parent its single ROOT_BACKREF names, or undefined (none, or several: not a tree). */
  private async parentOf(id: bigint): Promise<bigint | undefined> {
    const entry = await this.parents.get(id, async () => {
      let parent: bigint | undefined;
      let count = 0;
      const from = key(id, KEY_TYPE.ROOT_BACKREF, 0n);
      const to = key(id, KEY_TYPE.ROOT_BACKREF, OBJECTID.MAX_U64);
      for await (const span of this.btree.range(this.rootTree, from, to)) {
        count += span.end - span.start;
        parent = span.leaf.offsets[span.start];
        if (count > 1) return { parent: undefined };
      }
      return { parent };
    });
    return entry.parent;
  }

  /** Whether the chain of parents from `id` reaches the top level without a loop. */
  private async isAnchored(id: bigint): Promise<boolean> {
    return (
      await this.anchored.get(id, async () => {
        const seen = new Set<bigint>();
        let at: bigint | undefined = id;
        while (at !== undefined && at !== OBJECTID.FS_TREE) {
          if (seen.has(at) || seen.size > MAX_NESTING) return { ok: false };
          seen.add(at);
          at = await this.parentOf(at);
        }
        return { ok: at === OBJECTID.FS_TREE };
      })
    ).ok;
  }
}
