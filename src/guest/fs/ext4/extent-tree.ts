import { BoundedCache } from '../../../util/bounded-cache.js';
import { RunList, type BlockRun } from './block-run.js';
import { extentBlockChecksumMatches } from './checksums.js';
import { formatInvalid } from './errors.js';
import type { Ext4Inode } from './inode.js';
import { EXTENT } from './layout.js';
import type { Superblock } from './superblock.js';
import type { VolumeIO } from './volume-io.js';

/** One decoded extent-tree node (ifork.rst "Extent Tree"): a leaf's extents or an index's children. */
export interface ExtentNode {
  readonly depth: number;
  readonly count: number;
  /** First logical block of each entry. */
  readonly logical: Float64Array;
  /** Leaf: first physical block; index: the child node's block. */
  readonly physical: Float64Array;
  /** Leaf only: block count of each extent (0 for an index). */
  readonly length: Uint16Array;
  readonly unwritten: Uint8Array;
}

const LOGICAL_LIMIT = 2 ** 32;

/**
 * Parses and checks a node: magic, entry counts within the node's room, depth within the kernel's
 * limit, entries in ascending order inside [lo, hi), extents that neither overlap nor leave the
 * filesystem. `where` names the inode and block in errors.
 */
export function parseExtentNode(
  bytes: Buffer,
  room: number,
  sb: Superblock,
  lo: number,
  hi: number,
  fail: (problem: string) => Error,
): ExtentNode {
  if (bytes.readUInt16LE(EXTENT.eh_magic) !== EXTENT.MAGIC) throw fail('bad extent header magic');
  const count = bytes.readUInt16LE(EXTENT.eh_entries);
  const max = bytes.readUInt16LE(EXTENT.eh_max);
  const depth = bytes.readUInt16LE(EXTENT.eh_depth);
  if (max === 0 || max > room || count > max) throw fail(`extent header counts ${count}/${max} exceed the node's ${room} entries`);
  if (depth > EXTENT.MAX_DEPTH) throw fail(`extent tree depth ${depth} exceeds ${EXTENT.MAX_DEPTH}`);
  const node: ExtentNode = {
    depth,
    count,
    logical: new Float64Array(count),
    physical: new Float64Array(count),
    length: new Uint16Array(count),
    unwritten: new Uint8Array(count),
  };
  let previousEnd = lo;
  for (let i = 0; i < count; i++) {
    const at = EXTENT.HEADER_SIZE + i * EXTENT.ENTRY_SIZE;
    const logical = bytes.readUInt32LE(at + EXTENT.ee_block);
    let length = 1;
    let physical: number;
    if (depth === 0) {
      const raw = bytes.readUInt16LE(at + EXTENT.ee_len);
      node.unwritten[i] = raw > EXTENT.INIT_MAX_LEN ? 1 : 0;
      length = raw > EXTENT.INIT_MAX_LEN ? raw - EXTENT.INIT_MAX_LEN : raw;
      physical = bytes.readUInt16LE(at + EXTENT.ee_start_hi) * 2 ** 32 + bytes.readUInt32LE(at + EXTENT.ee_start_lo);
      if (length === 0) throw fail(`extent ${i} is empty`);
    } else {
      physical = bytes.readUInt16LE(at + EXTENT.ei_leaf_hi) * 2 ** 32 + bytes.readUInt32LE(at + EXTENT.ei_leaf_lo);
    }
    // Index keys may repeat nothing and leaves may not overlap: strictly ascending, inside the parent's range.
    if (logical < previousEnd || (i > 0 && logical <= node.logical[i - 1]!) || logical + length > Math.min(hi, LOGICAL_LIMIT)) {
      throw fail(`extent entry ${i} (logical block ${logical}) is out of order or outside [${lo}, ${hi})`);
    }
    if (physical <= sb.firstDataBlock || physical + length > sb.blocksCount) {
      throw fail(`extent entry ${i} points at blocks ${physical}+${length}, outside the filesystem`);
    }
    node.logical[i] = logical;
    node.physical[i] = physical;
    node.length[i] = depth === 0 ? length : 0;
    previousEnd = depth === 0 ? logical + length : logical;
  }
  return node;
}

export function extentNodeFootprint(node: ExtentNode): number {
  return 96 + node.count * 19;
}

/**
 * Maps logical blocks through an inode's extent tree. Child nodes are read once per call (a node
 * seen twice is a damaged or hostile tree), checked against their parent's key range and depth,
 * verified with the inode's checksum seed, and cached.
 */
export class ExtentTree {
  private readonly nodes: BoundedCache<string, ExtentNode>;
  /** Roots decoded from i_block, kept as long as the decoded inode is (the inode cache bounds them). */
  private readonly roots = new WeakMap<Ext4Inode, ExtentNode>();

  constructor(
    private readonly io: VolumeIO,
    private readonly sb: Superblock,
    cacheBytes: number,
  ) {
    this.nodes = new BoundedCache(cacheBytes, extentNodeFootprint);
  }

  async map(inode: Ext4Inode, first: number, end: number): Promise<BlockRun[]> {
    const fail = (problem: string): Error => formatInvalid(this.io.name, `inode ${inode.ino} extent tree`, problem, { ino: inode.ino });
    let root = this.roots.get(inode);
    if (!root) {
      root = parseExtentNode(inode.iBlock, (inode.iBlock.length - EXTENT.HEADER_SIZE) / EXTENT.ENTRY_SIZE, this.sb, 0, LOGICAL_LIMIT, fail);
      this.roots.set(inode, root);
    }
    const runs = new RunList(first, end);
    await this.walk(inode, root, 0, LOGICAL_LIMIT, runs, new Set<number>());
    return runs.finish();
  }

  private async walk(inode: Ext4Inode, node: ExtentNode, lo: number, hi: number, runs: RunList, seen: Set<number>): Promise<void> {
    for (let i = 0; i < node.count && !runs.done; i++) {
      const logical = node.logical[i]!;
      if (node.depth === 0) {
        const length = node.length[i]!;
        if (logical + length <= runs.position) continue;
        runs.add(logical, length, node.physical[i]!, node.unwritten[i] === 1);
        continue;
      }
      const childHi = i + 1 < node.count ? node.logical[i + 1]! : hi;
      if (childHi <= runs.position) continue;
      const block = node.physical[i]!;
      if (seen.has(block)) {
        throw formatInvalid(this.io.name, `inode ${inode.ino} extent tree`, `node block ${block} is referenced twice`, {
          ino: inode.ino,
          block,
        });
      }
      seen.add(block);
      const child = await this.readNode(inode, block, logical, childHi);
      if (child.depth !== node.depth - 1) {
        throw formatInvalid(
          this.io.name,
          `inode ${inode.ino} extent block ${block}`,
          `depth ${child.depth} under a node of depth ${node.depth}`,
          {
            ino: inode.ino,
            block,
          },
        );
      }
      await this.walk(inode, child, logical, childHi, runs, seen);
    }
  }

  private readNode(inode: Ext4Inode, block: number, lo: number, hi: number): Promise<ExtentNode> {
    // Keyed by inode and range too: the node was checked against this inode's seed and this parent's keys.
    return this.nodes.get(`${inode.ino}:${block}:${lo}:${hi}`, async () => {
      const where = `inode ${inode.ino} extent block ${block}`;
      const fail = (problem: string): Error => formatInvalid(this.io.name, where, problem, { ino: inode.ino, block });
      const bytes = await this.io.readBlocks(block, 1, where);
      const room = Math.floor((this.sb.blockSize - EXTENT.HEADER_SIZE) / EXTENT.ENTRY_SIZE);
      // The checksum first (where the header says it is), so that a damaged node is reported as such.
      const max = bytes.readUInt16LE(EXTENT.eh_max);
      if (this.sb.metadataCsum && bytes.readUInt16LE(EXTENT.eh_magic) === EXTENT.MAGIC && max > 0 && max <= room) {
        if (!extentBlockChecksumMatches(bytes, inode.csumSeed, max)) throw fail('checksum mismatch');
      }
      return parseExtentNode(bytes, room, this.sb, lo, hi, fail);
    });
  }
}
