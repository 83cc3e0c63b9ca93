import type { BlockReader } from '../../../core/block-reader.js';
import type { CairnError } from '../../../core/errors.js';
import { BoundedCache } from '../../../util/bounded-cache.js';
import { checksumMatches } from './checksum.js';
import type { ChunkMap } from './chunk-map.js';
import { formatInvalid } from './errors.js';
import { compareKeys, showKey, type Key } from './keys.js';
import { DISK_KEY, HEADER, ITEM, KEY_PTR, SUPERBLOCK } from './layout.js';
import type { Superblock } from './superblock.js';

/**
 * One decoded tree block ("Tree block header", "Leaf", "Node"): the keys of its slots, and either
 * the leaf's item data ranges inside `raw` or the node's child pointers.
 */
export interface TreeNode {
  readonly bytenr: number;
  readonly level: number;
  readonly generation: bigint;
  readonly owner: bigint;
  readonly nritems: number;
  readonly objectids: BigUint64Array;
  readonly types: Uint8Array;
  readonly offsets: BigUint64Array;
  /** Leaf: where each item's data starts in `raw`, and its size. */
  readonly dataStart: Uint32Array;
  readonly dataSize: Uint32Array;
  /** Node: each child's logical address and the generation the child must carry. */
  readonly children: Float64Array;
  readonly childGenerations: BigUint64Array;
  /** The whole block (leaves only; empty for nodes, whose slots are fully decoded). */
  readonly raw: Buffer;
}

/** What the pointer to a block promises about it (btrfs_read_extent_buffer's `check`). */
export interface BlockExpectation {
  readonly level: number;
  /** The generation the parent pointer or root item recorded: the block must carry exactly it. */
  readonly generation?: bigint;
  /** The parent's key for this child: the block's first key must equal it. */
  readonly firstKey?: Key;
}

export function nodeKey(node: TreeNode, slot: number): Key {
  return { objectid: node.objectids[slot]!, type: node.types[slot]!, offset: node.offsets[slot]! };
}

const EMPTY = Buffer.alloc(0);

/**
 * Reads, checks and caches tree blocks by logical address. Each copy (DUP keeps two) is checked
 * for its checksum, its recorded address, the filesystem's uuid and a consistent layout; the next
 * copy is tried when one is damaged, as the kernel repairs from a mirror. A block is then held to
 * what its parent promised: level (so a descent always ends), generation and first key.
 */
export class TreeBlocks {
  private readonly cache: BoundedCache<number, TreeNode>;

  constructor(
    private readonly volume: BlockReader,
    private readonly sb: Superblock,
    private readonly chunks: ChunkMap,
    private readonly name: string,
    cacheBytes: number,
  ) {
    this.cache = new BoundedCache(cacheBytes, (n) => n.raw.length + n.nritems * 48 + 256);
  }

  async read(logical: number, expect: BlockExpectation): Promise<TreeNode> {
    const node = await this.cache.get(logical, () => this.load(logical));
    const where = `tree block at ${logical}`;
    if (node.level !== expect.level) {
      throw formatInvalid(this.name, where, `is level ${node.level}, its parent expects level ${expect.level}`, { logical });
    }
    if (expect.generation !== undefined && node.generation !== expect.generation) {
      throw formatInvalid(this.name, where, `has generation ${node.generation}, its parent expects ${expect.generation}`, { logical });
    }
    if (expect.firstKey && node.nritems > 0 && compareKeys(nodeKey(node, 0), expect.firstKey) !== 0) {
      throw formatInvalid(this.name, where, `starts at key ${showKey(nodeKey(node, 0))}, its parent says ${showKey(expect.firstKey)}`, {
        logical,
      });
    }
    return node;
  }

  private async load(logical: number): Promise<TreeNode> {
    const where = `tree block at ${logical}`;
    if (!Number.isSafeInteger(logical) || logical <= 0 || logical % this.sb.sectorSize !== 0) {
      throw formatInvalid(this.name, where, 'is not a sector-aligned address', { logical });
    }
    const copies = this.chunks.map(logical, this.sb.nodeSize, where);
    let firstError: CairnError | undefined;
    for (const [index, physical] of copies.entries()) {
      const raw = await this.volume.read(physical, this.sb.nodeSize);
      try {
        return this.decode(raw, logical, copies.length > 1 ? `${where} (copy ${index + 1} of ${copies.length})` : where);
      } catch (err) {
        firstError ??= err as CairnError;
      }
    }
    throw firstError!;
  }

  private decode(raw: Buffer, logical: number, where: string): TreeNode {
    const bad = (problem: string): CairnError => formatInvalid(this.name, where, problem, { logical });
    const sb = this.sb;
    if (!checksumMatches(sb.csum, raw, HEADER.fsid, raw.length, raw, HEADER.csum)) throw bad(`${sb.csum.name} checksum mismatch`);
    if (raw.readBigUInt64LE(HEADER.bytenr) !== BigInt(logical)) throw bad(`records address ${raw.readBigUInt64LE(HEADER.bytenr)}`);
    if (!raw.subarray(HEADER.fsid, HEADER.fsid + 16).equals(sb.metadataUuid)) throw bad('belongs to another filesystem (fsid)');
    const level = raw[HEADER.level]!;
    if (level > SUPERBLOCK.MAX_LEVEL) throw bad(`level ${level} exceeds ${SUPERBLOCK.MAX_LEVEL}`);
    const nritems = raw.readUInt32LE(HEADER.nritems);
    const generation = raw.readBigUInt64LE(HEADER.generation);
    const room = sb.nodeSize - HEADER.SIZE;
    const slotSize = level === 0 ? ITEM.SIZE : KEY_PTR.SIZE;
    if (nritems * slotSize > room) throw bad(`${nritems} slots do not fit the block`);
    if (level > 0 && nritems === 0) throw bad('an interior node without children');
    const objectids = new BigUint64Array(nritems);
    const types = new Uint8Array(nritems);
    const offsets = new BigUint64Array(nritems);
    for (let i = 0; i < nritems; i++) {
      const at = HEADER.SIZE + i * slotSize;
      objectids[i] = raw.readBigUInt64LE(at + DISK_KEY.objectid);
      types[i] = raw[at + DISK_KEY.type]!;
      offsets[i] = raw.readBigUInt64LE(at + DISK_KEY.offset);
      if (
        i > 0 &&
        compareKeys(
          { objectid: objectids[i - 1]!, type: types[i - 1]!, offset: offsets[i - 1]! },
          {
            objectid: objectids[i]!,
            type: types[i]!,
            offset: offsets[i]!,
          },
        ) >= 0
      ) {
        throw bad(`slot ${i} is out of key order`);
      }
    }
    const base = { bytenr: logical, level, generation, owner: raw.readBigUInt64LE(HEADER.owner), nritems, objectids, types, offsets };
    if (level > 0) {
      const children = new Float64Array(nritems);
      const childGenerations = new BigUint64Array(nritems);
      for (let i = 0; i < nritems; i++) {
        const at = HEADER.SIZE + i * KEY_PTR.SIZE;
        const ptr = raw.readBigUInt64LE(at + KEY_PTR.blockptr);
        const gen = raw.readBigUInt64LE(at + KEY_PTR.generation);
        if (ptr === 0n || ptr > BigInt(Number.MAX_SAFE_INTEGER) || Number(ptr) % sb.sectorSize !== 0) {
          throw bad(`slot ${i} points at invalid address ${ptr}`);
        }
        if (gen === 0n || gen > generation) throw bad(`slot ${i} claims generation ${gen}, newer than the node's ${generation}`);
        children[i] = Number(ptr);
        childGenerations[i] = gen;
      }
      return { ...base, dataStart: new Uint32Array(0), dataSize: new Uint32Array(0), children, childGenerations, raw: EMPTY };
    }
    const dataStart = new Uint32Array(nritems);
    const dataSize = new Uint32Array(nritems);
    // check_leaf: item data is packed from the block's end downwards, never into the item headers.
    let limit = room;
    const floor = nritems * ITEM.SIZE;
    for (let i = 0; i < nritems; i++) {
      const at = HEADER.SIZE + i * ITEM.SIZE;
      const offset = raw.readUInt32LE(at + ITEM.offset);
      const size = raw.readUInt32LE(at + ITEM.size);
      if (offset + size > limit || offset < floor) throw bad(`item ${i} data ${offset}+${size} overlaps other items`);
      limit = offset;
      dataStart[i] = HEADER.SIZE + offset;
      dataSize[i] = size;
    }
    return { ...base, dataStart, dataSize, children: new Float64Array(0), childGenerations: new BigUint64Array(0), raw };
  }
}
