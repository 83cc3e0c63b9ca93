import { formatInvalid } from './errors.js';
import { compareKeys, showKey, type Key } from './keys.js';
import { nodeKey, type TreeBlocks, type TreeNode } from './tree-block.js';

/** Where a tree starts: the root block's address and level, and the generation it must carry. */
export interface TreeRoot {
  readonly bytenr: number;
  readonly level: number;
  readonly generation?: bigint;
  /** Names the tree in errors (`root tree`, `subvolume 256`). */
  readonly what: string;
}

/** Slots [start, end) of one leaf, all with keys inside the range asked for. */
export interface LeafSpan {
  readonly leaf: TreeNode;
  readonly start: number;
  readonly end: number;
}

/** The last slot whose key is <= `target`, or -1 when every key is greater. */
function lastAtOrBefore(node: TreeNode, target: Key): number {
  let lo = 0;
  let hi = node.nritems - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(nodeKey(node, mid), target) <= 0) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/**
 * Searches and walks B-trees ("Trees" in the on-disk format). Termination and bounded work on a
 * hostile image come from the block checks: every child is one level below its parent (a descent
 * ends within 8 reads), starts at the key its parent names, and keys rise strictly across the
 * walk, so no block is visited twice by one walk however the pointers are arranged.
 */
export class BTree {
  constructor(
    private readonly blocks: TreeBlocks,
    private readonly volume: string,
  ) {}

  private child(node: TreeNode, slot: number): Promise<TreeNode> {
    return this.blocks.read(node.children[slot]!, {
      level: node.level - 1,
      generation: node.childGenerations[slot]!,
      firstKey: nodeKey(node, slot),
    });
  }

  private root(root: TreeRoot): Promise<TreeNode> {
    return this.blocks.read(root.bytenr, { level: root.level, ...(root.generation !== undefined ? { generation: root.generation } : {}) });
  }

  /** Every item with a key in [from, to], in key order, a leaf's span at a time. */
  async *range(root: TreeRoot, from: Key, to: Key): AsyncGenerator<LeafSpan> {
    const path: { node: TreeNode; slot: number }[] = [];
    let node = await this.root(root);
    while (node.level > 0) {
      const slot = Math.max(0, lastAtOrBefore(node, from));
      path.push({ node, slot });
      node = await this.child(node, slot);
    }
    let previous: Key | undefined;
    for (;;) {
      if (node.nritems > 0) {
        const first = nodeKey(node, 0);
        if (previous && compareKeys(previous, first) >= 0) {
          throw formatInvalid(
            this.volume,
            `${root.what} tree block at ${node.bytenr}`,
            `key ${showKey(first)} does not follow ${showKey(previous)}`,
          );
        }
        previous = nodeKey(node, node.nritems - 1);
      }
      let start = lastAtOrBefore(node, from);
      if (start < 0 || compareKeys(nodeKey(node, start), from) < 0) start++;
      let end = start;
      while (end < node.nritems && compareKeys(nodeKey(node, end), to) <= 0) end++;
      if (end > start) yield { leaf: node, start, end };
      if (end < node.nritems) return;
      let level = path.length - 1;
      while (level >= 0 && path[level]!.slot + 1 >= path[level]!.node.nritems) level--;
      if (level < 0) return;
      path.length = level + 1;
      const step = path[level]!;
      step.slot++;
      if (compareKeys(nodeKey(step.node, step.slot), to) > 0) return;
      node = await this.child(step.node, step.slot);
      while (node.level > 0) {
        path.push({ node, slot: 0 });
        node = await this.child(node, 0);
      }
    }
  }

  /** The item with exactly `key`, or undefined. */
  async find(root: TreeRoot, key: Key): Promise<{ leaf: TreeNode; slot: number } | undefined> {
    for await (const span of this.range(root, key, key)) return { leaf: span.leaf, slot: span.start };
    return undefined;
  }

  /** The key of the last item at or before `target` (for items that cover a range from their key), or undefined. */
  async lastKeyAtOrBefore(root: TreeRoot, target: Key): Promise<Key | undefined> {
    let node = await this.root(root);
    for (;;) {
      const slot = lastAtOrBefore(node, target);
      if (slot < 0) return undefined;
      if (node.level === 0) return nodeKey(node, slot);
      node = await this.child(node, slot);
    }
  }
}
