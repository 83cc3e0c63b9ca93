import { BoundedCache } from '../../../util/bounded-cache.js';
import type { AttributeData, AttributeRef } from './attribute-data.js';
import type { Collation } from './collation.js';
import { formatInvalid, recordName } from './errors.js';
import { decodeIndexBlock, indexNodeFootprint, parseIndexRoot, type IndexEntry, type IndexNode, type IndexRoot } from './index-node.js';
import { ATTR_TYPE, I30 } from './layout.js';
import { findAttribute, type NtfsNode } from './node.js';

/** Index blocks read per volume read of a listing (32 blocks of 4 KiB). */
const BATCH_BYTES = 128 * 1024;
/** B+tree levels a lookup descends at most (a directory of billions of names has fewer than 10). */
const MAX_DEPTH = 32;

/**
 * Directories: the $I30 B+tree of a directory's names ($INDEX_ROOT in the record, index blocks in
 * $INDEX_ALLOCATION, the blocks in use in $BITMAP). A listing reads the root, then every block in
 * use in bitmap order (as ntfs-3g's ntfs_readdir does), a batch of blocks per volume read: it visits
 * each block once, so no damaged pointer can make it loop, and holds one batch at a time. A lookup
 * descends the tree by the file name collation, where the volume's $UpCase table allows, else scans.
 */
export class DirectoryIndex {
  private readonly blocks: BoundedCache<string, IndexNode>;
  private readonly roots = new WeakMap<NtfsNode, IndexRoot>();

  constructor(
    private readonly data: AttributeData,
    private readonly volume: string,
    private readonly clusterSize: number,
    private readonly collation: () => Promise<Collation | undefined>,
    cacheBytes: number,
  ) {
    this.blocks = new BoundedCache(cacheBytes, indexNodeFootprint);
  }

  /** The decoded $INDEX_ROOT of a directory node. */
  root(dir: NtfsNode): IndexRoot {
    let root = this.roots.get(dir);
    if (!root) {
      const attr = findAttribute(dir, ATTR_TYPE.INDEX_ROOT, I30);
      if (!attr?.resident) throw this.bad(dir, 'has no resident $INDEX_ROOT $I30');
      const parsed = parseIndexRoot(attr.resident.value);
      if (typeof parsed === 'string') throw this.bad(dir, parsed);
      root = parsed;
      this.roots.set(dir, root);
    }
    return root;
  }

  /** The bytes of the directory's index allocation ($INDEX_ALLOCATION $I30 size), 0 without one. */
  allocationSize(dir: NtfsNode): number {
    const allocation = findAttribute(dir, ATTR_TYPE.INDEX_ALLOCATION, I30);
    return allocation ? this.data.layout({ node: dir, attr: allocation }).dataSize : 0;
  }

  /** Every node of the tree: the root, then each index block in use in allocation order. */
  async *nodes(dir: NtfsNode): AsyncGenerator<IndexNode> {
    const root = this.root(dir);
    yield root.node;
    const allocation = findAttribute(dir, ATTR_TYPE.INDEX_ALLOCATION, I30);
    if (!allocation) {
      if (root.hasChildren) throw this.bad(dir, 'has index children but no $INDEX_ALLOCATION');
      return;
    }
    const ref: AttributeRef = { node: dir, attr: allocation };
    const blockSize = root.blockSize;
    const blockCount = Math.floor(this.data.layout(ref).dataSize / blockSize);
    const bitmap = await this.bitmap(dir, blockCount);
    const batch = Math.max(1, Math.floor(BATCH_BYTES / blockSize));
    for (let i = 0; i < blockCount;) {
      if (!isSet(bitmap, i)) {
        i++;
        continue;
      }
      let n = 1;
      while (n < batch && i + n < blockCount && isSet(bitmap, i + n)) n++;
      const bytes = await this.data.read(ref, i * blockSize, n * blockSize);
      for (let k = 0; k < n; k++) {
        const vcn = this.vcnOfBlock(i + k, blockSize);
        const node = this.decodeBlock(dir, vcn, bytes.subarray(k * blockSize, (k + 1) * blockSize));
        // Keep it for the lookups that usually follow a listing (FUSE looks every name up).
        void this.blocks.get(`${dir.record}:${vcn}`, () => Promise.resolve(node));
        yield node;
      }
      i += n;
    }
  }

  /**
   * The entry named exactly `name` (any namespace: DOS aliases resolve too), or with `ignoreCase`
   * the exact one if any, else the first whose name matches ignoring case (as Windows resolves).
   */
  async lookup(dir: NtfsNode, name: string, ignoreCase = false): Promise<IndexEntry | undefined> {
    const collation = await this.collation();
    if (!collation) return this.scan(dir, name, ignoreCase);
    const root = this.root(dir);
    const visited = new Set<number>();
    let folded: IndexEntry | undefined;
    const search = async (node: IndexNode, depth: number): Promise<IndexEntry | undefined> => {
      for (const e of node.entries) {
        const c = collation.compareIgnoringCase(name, e.name);
        if (c < 0) return e.child === undefined ? undefined : descend(e.child, depth);
        if (c === 0) {
          if (e.name === name) return e;
          folded ??= e;
          // Names equal but for case may sit on both sides of this one: look left, then go on.
          if (e.child !== undefined) {
            const found = await descend(e.child, depth);
            if (found) return found;
          }
        }
      }
      return node.endChild === undefined ? undefined : descend(node.endChild, depth);
    };
    const descend = async (vcn: number, depth: number): Promise<IndexEntry | undefined> => {
      if (depth >= MAX_DEPTH) throw this.bad(dir, `index tree is deeper than ${MAX_DEPTH} levels`);
      if (visited.has(vcn)) throw this.bad(dir, `index tree visits VCN ${vcn} twice (a loop)`);
      visited.add(vcn);
      return search(await this.block(dir, root.blockSize, vcn), depth + 1);
    };
    const exact = await search(root.node, 0);
    return exact ?? (ignoreCase ? folded : undefined);
  }

  /** A lookup by reading every node (no usable $UpCase table to descend by; case folds as JS does). */
  private async scan(dir: NtfsNode, name: string, ignoreCase: boolean): Promise<IndexEntry | undefined> {
    let folded: IndexEntry | undefined;
    const upper = name.toUpperCase();
    for await (const node of this.nodes(dir)) {
      for (const e of node.entries) {
        if (e.name === name) return e;
        if (ignoreCase && !folded && e.name.length === name.length && e.name.toUpperCase() === upper) folded = e;
      }
    }
    return folded;
  }

  /** One index block by VCN (lookups), read, checked and cached. */
  private block(dir: NtfsNode, blockSize: number, vcn: number): Promise<IndexNode> {
    return this.blocks.get(`${dir.record}:${vcn}`, async () => {
      const allocation = findAttribute(dir, ATTR_TYPE.INDEX_ALLOCATION, I30);
      if (!allocation) throw this.bad(dir, 'has index children but no $INDEX_ALLOCATION');
      const ref: AttributeRef = { node: dir, attr: allocation };
      const offset = vcn * (this.clusterSize <= blockSize ? this.clusterSize : 512);
      if (offset % blockSize !== 0 || offset + blockSize > this.data.layout(ref).dataSize) {
        throw this.bad(dir, `index entry points at VCN ${vcn}, outside the index allocation`);
      }
      return this.decodeBlock(dir, vcn, await this.data.read(ref, offset, blockSize));
    });
  }

  private decodeBlock(dir: NtfsNode, vcn: number, bytes: Buffer): IndexNode {
    const node = decodeIndexBlock(bytes, vcn);
    if (typeof node === 'string') {
      throw formatInvalid(this.volume, `directory ${dir.record} index block at VCN ${vcn}`, node, { record: dir.record, vcn });
    }
    return node;
  }

  /** VCNs count clusters, or 512-byte units when a cluster is larger than an index block. */
  private vcnOfBlock(block: number, blockSize: number): number {
    return (block * blockSize) / (this.clusterSize <= blockSize ? this.clusterSize : 512);
  }

  /** The in-use bits of the index blocks ($BITMAP $I30), as many bytes as the blocks need. */
  private async bitmap(dir: NtfsNode, blockCount: number): Promise<Buffer> {
    const attr = findAttribute(dir, ATTR_TYPE.BITMAP, I30);
    if (!attr) throw this.bad(dir, 'has an index allocation but no $BITMAP');
    const ref: AttributeRef = { node: dir, attr };
    const need = Math.ceil(blockCount / 8);
    const bytes = await this.data.read(ref, 0, need);
    if (bytes.length < need) throw this.bad(dir, `index bitmap holds ${bytes.length} bytes for ${blockCount} blocks`);
    return bytes;
  }

  private bad(dir: NtfsNode, problem: string): Error {
    return formatInvalid(this.volume, `directory ${recordName(dir.record)}`, problem, { record: dir.record });
  }
}

const isSet = (bitmap: Buffer, bit: number): boolean => (bitmap[bit >>> 3]! & (1 << (bit & 7))) !== 0;
