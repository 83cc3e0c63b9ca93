import type { BlockReader } from '../../../core/block-reader.js';
import { CairnError } from '../../../core/errors.js';
import type {
  GuestDirEntry,
  GuestFileExtent,
  GuestFileSystem,
  GuestNodeId,
  GuestOpenOptions,
  GuestStat,
} from '../../../core/guest-filesystem.js';
import { BoundedCache } from '../../../util/bounded-cache.js';
import { BTree, type TreeRoot } from './btree.js';
import { chunkItemSize, ChunkMap, parseChunk } from './chunk-map.js';
import { CsumTree } from './csum-tree.js';
import { Directories } from './directory.js';
import { EntryResolver } from './entries.js';
import { formatInvalid } from './errors.js';
import { FileData, type FileRef } from './file-data.js';
import { decodeInodeItem, type InodeItem } from './items.js';
import { key } from './keys.js';
import { KEY_TYPE, MODE, OBJECTID } from './layout.js';
import { packId, unpackId, type NodeRef } from './node-ids.js';
import { Subvolumes, type Subvolume } from './subvolumes.js';
import { readSuperblock, type Superblock } from './superblock.js';
import { TreeBlocks } from './tree-block.js';

const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
/** PATH_MAX: a longer symlink target is a damaged inode. */
const MAX_SYMLINK_LENGTH = 4096;
/** The entry the root lists, when the default subvolume is not the top level, that leads to the top level (subvolume 5). */
export const TOP_LEVEL_NAME = Buffer.from('@top-level');

interface Node {
  readonly ref: NodeRef;
  /** The subvolume whose tree holds the inode (for a placeholder: the parent directory's). */
  readonly sub: Subvolume;
  readonly objectid: bigint;
  readonly inode: InodeItem;
}

/** A read-only btrfs volume (see GuestFileSystem for the contract, index.ts for ids and subvolumes). */
export class BtrfsFileSystem implements GuestFileSystem {
  readonly type = 'btrfs';
  readonly label?: string;
  readonly uuid: string;
  readonly rootId: GuestNodeId;
  /** What the reader could not honour but read anyway (an unreplayed log tree). */
  readonly notes: readonly string[];
  /** The subvolume the kernel mounts by default (the root), and whether that is not the top level. */
  readonly defaultSubvolume: bigint;

  private readonly inodes: BoundedCache<string, { inode: InodeItem }>;

  private constructor(
    private readonly sb: Superblock,
    private readonly name: string,
    private readonly btree: BTree,
    private readonly subvolumes: Subvolumes,
    private readonly dirs: Directories,
    private readonly resolver: EntryResolver,
    private readonly data: FileData,
    defaultSubvolume: bigint,
    cacheBytes: number,
  ) {
    this.label = sb.label || undefined;
    this.uuid = sb.uuid;
    this.defaultSubvolume = defaultSubvolume;
    this.rootId =
      defaultSubvolume === OBJECTID.FS_TREE
        ? packId({ kind: 'inode', tree: OBJECTID.FS_TREE, objectid: OBJECTID.FIRST_FREE })
        : packId({ kind: 'view-root', tree: defaultSubvolume });
    const notes: string[] = [];
    if (sb.logRoot !== 0) notes.push('a log tree holds fsynced writes after the last commit: they are not replayed');
    if (sb.numDevices > 1) notes.push(`the filesystem spans ${sb.numDevices} devices, but every chunk lies on this one`);
    this.notes = notes;
    this.inodes = new BoundedCache(cacheBytes, () => 400);
  }

  static async open(volume: BlockReader, options: GuestOpenOptions): Promise<BtrfsFileSystem> {
    const name = options.name;
    const cacheBytes = options.metadataCacheBytes ?? DEFAULT_CACHE_BYTES;
    const share = (sixteenths: number): number => Math.floor((cacheBytes * sixteenths) / 16);
    const sb = await readSuperblock(volume, name);
    const chunks = new ChunkMap(sb, volume.size, name);
    chunks.loadSysChunkArray();
    const btree = new BTree(new TreeBlocks(volume, sb, chunks, name, share(9)), name);
    await loadChunkTree(btree, sb, chunks, volume.size, name);
    const rootTree: TreeRoot = { bytenr: sb.rootTree, level: sb.rootLevel, generation: sb.generation, what: 'root tree' };
    const subvolumes = new Subvolumes(btree, rootTree, name, share(1));
    const csumRoot = await subvolumes.treeRoot(OBJECTID.CSUM_TREE, 'checksum tree');
    const csums = new CsumTree(btree, csumRoot, sb.sectorSize, sb.csum.size, name);
    const data = new FileData(volume, sb, chunks, btree, csums, name, share(4));
    const defaultId = await subvolumes.defaultId();
    const fs = new BtrfsFileSystem(
      sb,
      name,
      btree,
      subvolumes,
      new Directories(btree, name),
      new EntryResolver(btree, subvolumes, name),
      data,
      defaultId,
      share(2),
    );
    const root = await fs.node(fs.rootId);
    if (root.inode.type !== 'dir') throw formatInvalid(name, `subvolume ${defaultId} inode 256`, 'the root is not a directory');
    if (defaultId !== OBJECTID.FS_TREE) await fs.node(packId({ kind: 'inode', tree: OBJECTID.FS_TREE, objectid: OBJECTID.FIRST_FREE }));
    return fs;
  }

  async stat(id: GuestNodeId): Promise<GuestStat> {
    const { inode } = await this.node(id);
    return {
      id,
      type: inode.type,
      size: inode.size,
      mode: inode.mode & MODE.PERMISSIONS,
      uid: inode.uid,
      gid: inode.gid,
      nlink: inode.nlink,
      mtimeNs: inode.mtimeNs,
      atimeNs: inode.atimeNs,
      ctimeNs: inode.ctimeNs,
      birthtimeNs: inode.otimeNs,
      ...(inode.type === 'char' || inode.type === 'block' ? { rdev: deviceNumber(inode.rdev) } : {}),
    };
  }

  async lookup(dirId: GuestNodeId, name: Buffer): Promise<GuestDirEntry | undefined> {
    const dir = await this.directory(dirId);
    if (dir.ref.kind === 'placeholder' || name.includes(0x2f) || name.includes(0)) return undefined;
    const item = await this.dirs.lookup(dir.sub.tree, dir.objectid, name);
    if (item) return this.resolver.resolve(dir.sub.tree, dir.sub.id, dir.objectid, item);
    if (dir.ref.kind === 'view-root' && name.equals(TOP_LEVEL_NAME)) return this.topLevelEntry();
    return undefined;
  }

  async *readdir(dirId: GuestNodeId): AsyncIterable<GuestDirEntry> {
    const dir = await this.directory(dirId);
    if (dir.ref.kind === 'placeholder') return;
    let shadowed = false;
    for await (const batch of this.dirs.entries(dir.sub.tree, dir.objectid, dir.inode.size)) {
      for (const item of batch) {
        if (dir.ref.kind === 'view-root' && item.name.equals(TOP_LEVEL_NAME)) shadowed = true;
        yield await this.resolver.resolve(dir.sub.tree, dir.sub.id, dir.objectid, item);
      }
    }
    if (dir.ref.kind === 'view-root' && !shadowed) yield this.topLevelEntry();
  }

  async read(id: GuestNodeId, offset: number, length: number): Promise<Buffer> {
    checkRange(offset, length);
    return this.data.read(await this.regularFile(id), offset, length);
  }

  async readlink(id: GuestNodeId): Promise<Buffer> {
    const node = await this.node(id);
    if (node.inode.type !== 'symlink')
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: ${String(id)} is not a symlink`, { id: String(id) });
    const where = `${node.sub.tree.what} inode ${node.objectid} symlink`;
    if (node.inode.size === 0 || node.inode.size > MAX_SYMLINK_LENGTH)
      throw formatInvalid(this.name, where, `target length ${node.inode.size} is invalid`);
    return this.data.read(this.fileRef(node), 0, node.inode.size);
  }

  async extents(id: GuestNodeId, offset: number, length: number): Promise<GuestFileExtent[]> {
    checkRange(offset, length);
    return this.data.extents(await this.regularFile(id), offset, length);
  }

  private topLevelEntry(): GuestDirEntry {
    return {
      name: Buffer.from(TOP_LEVEL_NAME),
      id: packId({ kind: 'inode', tree: OBJECTID.FS_TREE, objectid: OBJECTID.FIRST_FREE }),
      type: 'dir',
    };
  }

  private fileRef(node: Node): FileRef {
    return { tree: node.sub.tree, ino: node.objectid, inode: node.inode };
  }

  private async node(id: GuestNodeId): Promise<Node> {
    const ref = unpackId(id);
    const notFound = (): CairnError => new CairnError('ERR_NOT_FOUND', `${this.name}: no node ${String(id)}`, { id: String(id) });
    if (!ref) throw notFound();
    const sub = await this.subvolumes.get(ref.tree);
    if (!sub) throw notFound();
    if (ref.kind === 'placeholder') {
      // new_simple_dir: an empty directory owned like the one holding it, with that one's times.
      const parent = await this.inode(sub, ref.dir);
      const inode: InodeItem = { ...parent, type: 'dir', mode: MODE.S_IFDIR | 0o755, size: 0, nbytes: 0, nlink: 1, rdev: 0n, flags: 0 };
      return { ref, sub, objectid: OBJECTID.EMPTY_SUBVOL_DIR, inode };
    }
    const objectid = ref.kind === 'inode' ? ref.objectid : OBJECTID.FIRST_FREE;
    if (objectid < OBJECTID.FIRST_FREE || objectid > OBJECTID.LAST_FREE) throw notFound();
    return { ref, sub, objectid, inode: await this.inode(sub, objectid) };
  }

  private async inode(sub: Subvolume, objectid: bigint): Promise<InodeItem> {
    const entry = await this.inodes.get(`${sub.id}:${objectid}`, async () => {
      const found = await this.btree.find(sub.tree, key(objectid, KEY_TYPE.INODE_ITEM, 0n));
      const where = `${sub.tree.what} inode ${objectid}`;
      if (!found) throw formatInvalid(this.name, where, 'has no inode item');
      const { leaf, slot } = found;
      return {
        inode: decodeInodeItem(leaf.raw.subarray(leaf.dataStart[slot], leaf.dataStart[slot]! + leaf.dataSize[slot]!), this.name, where),
      };
    });
    return entry.inode;
  }

  private async directory(id: GuestNodeId): Promise<Node> {
    const node = await this.node(id);
    if (node.inode.type !== 'dir')
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: ${String(id)} is not a directory`, { id: String(id) });
    return node;
  }

  private async regularFile(id: GuestNodeId): Promise<FileRef> {
    const node = await this.node(id);
    if (node.inode.type !== 'file')
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: ${String(id)} is not a regular file`, { id: String(id) });
    return this.fileRef(node);
  }
}

/** Reads every CHUNK_ITEM of the chunk tree into the map (the sys_chunk_array only had the SYSTEM chunks). */
async function loadChunkTree(btree: BTree, sb: Superblock, chunks: ChunkMap, volumeSize: number, name: string): Promise<void> {
  const tree: TreeRoot = { bytenr: sb.chunkRoot, level: sb.chunkRootLevel, generation: sb.chunkRootGeneration, what: 'chunk tree' };
  const from = key(OBJECTID.FIRST_CHUNK_TREE, KEY_TYPE.CHUNK_ITEM, 0n);
  const to = key(OBJECTID.FIRST_CHUNK_TREE, KEY_TYPE.CHUNK_ITEM, OBJECTID.MAX_U64);
  for await (const span of btree.range(tree, from, to)) {
    const { leaf } = span;
    for (let slot = span.start; slot < span.end; slot++) {
      const where = `chunk tree item at ${leaf.offsets[slot]}`;
      const bytes = leaf.raw.subarray(leaf.dataStart[slot], leaf.dataStart[slot]! + leaf.dataSize[slot]!);
      if (chunkItemSize(bytes, 0, bytes.length, name, where) !== bytes.length)
        throw formatInvalid(name, where, 'item size does not match its stripes');
      chunks.add(parseChunk(bytes, leaf.offsets[slot]!, sb, volumeSize, name));
    }
  }
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `invalid range ${offset}+${length}`, { offset, length });
  }
}

/**
 * A device inode's number: btrfs stores the kernel's internal dev_t (MKDEV: major << 20 | minor);
 * returned as Linux's new_encode_dev, what stat's st_rdev shows.
 */
function deviceNumber(rdev: bigint): number {
  const major = Number((rdev >> 20n) & 0xfffn);
  const minor = Number(rdev & 0xfffffn);
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}
