import { copyBytes } from '../../../util/bytes.js';
import type { BlockReader } from '../../../core/block-reader.js';
import { CairnError } from '../../../core/errors.js';
import type {
  GuestDirEntry,
  GuestFileExtent,
  GuestFileSystem,
  GuestNodeId,
  GuestNodeType,
  GuestOpenOptions,
  GuestStat,
} from '../../../core/guest-filesystem.js';
import { BlockMap } from './block-map.js';
import { DirReader } from './dir-reader.js';
import type { DirEntryRecord } from './directory.js';
import { formatInvalid, unsupported } from './errors.js';
import { ExtentTree } from './extent-tree.js';
import { FileData } from './file-data.js';
import { GroupDescriptors } from './group-descriptors.js';
import type { Ext4Inode } from './inode.js';
import { InodeTable } from './inode-table.js';
import {
  DIRENT,
  DIRENT_FILE_TYPES,
  FEATURE_INCOMPAT,
  FEATURE_RO_COMPAT,
  INODE,
  INODE_FLAGS,
  MODE,
  ROOT_INO,
  SUPERBLOCK,
} from './layout.js';
import { hasCompat, hasIncompat, parseSuperblock, type Superblock } from './superblock.js';
import { VolumeIO } from './volume-io.js';

const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
/** Slow symlink targets are at most a page in Linux; anything longer is a damaged inode. */
const MAX_SYMLINK_LENGTH = 65536;

/** ext2 and ext3 are what blkid calls volumes with only the features those kernels knew. */
const EXT3_INCOMPAT = FEATURE_INCOMPAT.filetype | FEATURE_INCOMPAT.recover | FEATURE_INCOMPAT.meta_bg;
const EXT3_RO_COMPAT = FEATURE_RO_COMPAT.sparse_super | FEATURE_RO_COMPAT.large_file | FEATURE_RO_COMPAT.btree_dir;

/** A read-only ext2/ext3/ext4 volume (see GuestFileSystem for the contract). */
export class Ext4FileSystem implements GuestFileSystem {
  readonly type: 'ext2' | 'ext3' | 'ext4';
  readonly label?: string;
  readonly uuid: string;
  readonly rootId: GuestNodeId = BigInt(ROOT_INO);
  /** What the reader could not honour but read anyway (a journal that needs recovery). */
  readonly notes: readonly string[];
  private readonly io: VolumeIO;
  private readonly inodes: InodeTable;
  private readonly data: FileData;
  private readonly dirs: DirReader;

  private constructor(
    volume: BlockReader,
    private readonly sb: Superblock,
    private readonly name: string,
    cacheBytes: number,
  ) {
    const ext3Only = (sb.incompat & ~EXT3_INCOMPAT) === 0 && (sb.roCompat & ~EXT3_RO_COMPAT) === 0;
    this.type = !ext3Only ? 'ext4' : hasCompat(sb, 'has_journal') ? 'ext3' : 'ext2';
    this.label = sb.label || undefined;
    this.uuid = sb.uuid;
    this.notes = hasIncompat(sb, 'recover')
      ? ['the journal needs recovery: files are read as last written in place, without replaying the journal']
      : [];
    this.io = new VolumeIO(volume, name, sb.blockSize, sb.blocksCount);
    const share = (sixteenths: number): number => Math.floor((cacheBytes * sixteenths) / 16);
    this.inodes = new InodeTable(this.io, sb, new GroupDescriptors(this.io, sb, share(1)), share(5));
    this.data = new FileData(this.io, new ExtentTree(this.io, sb, share(2)), new BlockMap(this.io, sb, share(2)));
    this.dirs = new DirReader(this.io, sb, this.data, share(6));
  }

  static async open(volume: BlockReader, options: GuestOpenOptions): Promise<Ext4FileSystem> {
    if (volume.size < SUPERBLOCK.OFFSET + SUPERBLOCK.SIZE) throw formatInvalid(options.name, 'superblock', 'the volume is too small');
    const sb = parseSuperblock(await volume.read(SUPERBLOCK.OFFSET, SUPERBLOCK.SIZE), volume.size, options.name);
    const fs = new Ext4FileSystem(volume, sb, options.name, options.metadataCacheBytes ?? DEFAULT_CACHE_BYTES);
    const root = await fs.inodes.get(ROOT_INO);
    if (root.type !== 'dir') throw formatInvalid(options.name, `inode ${ROOT_INO}`, 'the root is not a directory');
    return fs;
  }

  async stat(id: GuestNodeId): Promise<GuestStat> {
    const inode = await this.inode(id);
    const stat: GuestStat = {
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
      ...(inode.crtimeNs !== undefined ? { birthtimeNs: inode.crtimeNs } : {}),
      ...(inode.type === 'char' || inode.type === 'block' ? { rdev: deviceNumber(inode.iBlock) } : {}),
    };
    return stat;
  }

  async lookup(dirId: GuestNodeId, name: Buffer): Promise<GuestDirEntry | undefined> {
    const dir = await this.directory(dirId);
    if (name.length === 0 || name.length > DIRENT.MAX_NAME_LEN || name.includes(0x2f) || name.includes(0)) return undefined;
    const found = await this.dirs.lookup(dir, name);
    return found ? this.entry(found) : undefined;
  }

  async *readdir(dirId: GuestNodeId): AsyncIterable<GuestDirEntry> {
    const dir = await this.directory(dirId);
    for await (const block of this.dirs.entries(dir)) for (const record of block) yield this.entry(record);
  }

  async read(id: GuestNodeId, offset: number, length: number): Promise<Buffer> {
    checkRange(offset, length);
    const inode = await this.regularFile(id);
    return this.data.read(inode, offset, length);
  }

  async readlink(id: GuestNodeId): Promise<Buffer> {
    const inode = await this.inode(id);
    if (inode.type !== 'symlink')
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: inode ${id} is not a symlink`, { id: String(id) });
    this.refuseEncrypted(inode);
    const where = `inode ${inode.ino} symlink`;
    if (inode.size === 0 || inode.size > MAX_SYMLINK_LENGTH)
      throw formatInvalid(this.name, where, `target length ${inode.size} is invalid`);
    if (this.isFastSymlink(inode)) {
      if (inode.size >= INODE.I_BLOCK_SIZE) throw formatInvalid(this.name, where, `a ${inode.size}-byte target cannot fit i_block`);
      return Buffer.from(inode.iBlock.subarray(0, inode.size));
    }
    return this.data.read(inode, 0, inode.size);
  }

  async extents(id: GuestNodeId, offset: number, length: number): Promise<GuestFileExtent[]> {
    checkRange(offset, length);
    const inode = await this.regularFile(id);
    return this.data.extents(inode, offset, length);
  }

  /** ext4_inode_is_fast_symlink: the target is in i_block when no data block is charged to the inode. */
  private isFastSymlink(inode: Ext4Inode): boolean {
    if (inode.flags & INODE_FLAGS.INLINE_DATA) return false;
    const xattrSectors = inode.fileAcl !== 0 ? (this.sb.clusterRatio * this.sb.blockSize) / 512 : 0;
    return inode.sectors - xattrSectors === 0;
  }

  private entry(record: DirEntryRecord): GuestDirEntry {
    const type: GuestNodeType | undefined = DIRENT_FILE_TYPES[record.fileType as keyof typeof DIRENT_FILE_TYPES];
    return type
      ? { name: copyBytes(record.name, 0, record.name.length), id: BigInt(record.ino), type }
      : { name: copyBytes(record.name, 0, record.name.length), id: BigInt(record.ino) };
  }

  private inode(id: GuestNodeId): Promise<Ext4Inode> {
    if (typeof id !== 'bigint' || id < 1n || id > BigInt(this.sb.inodesCount)) {
      return Promise.reject(new CairnError('ERR_NOT_FOUND', `${this.name}: no inode ${String(id)}`, { id: String(id) }));
    }
    return this.inodes.get(Number(id));
  }

  private async directory(id: GuestNodeId): Promise<Ext4Inode> {
    const inode = await this.inode(id);
    if (inode.type !== 'dir')
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: inode ${id} is not a directory`, { id: String(id) });
    this.refuseEncrypted(inode);
    return inode;
  }

  private async regularFile(id: GuestNodeId): Promise<Ext4Inode> {
    const inode = await this.inode(id);
    if (inode.type !== 'file')
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: inode ${id} is not a regular file`, { id: String(id) });
    this.refuseEncrypted(inode);
    return inode;
  }

  private refuseEncrypted(inode: Ext4Inode): void {
    if (inode.flags & INODE_FLAGS.ENCRYPT)
      throw unsupported(this.name, 'encrypt', `inode ${inode.ino} is encrypted (no keys)`, { ino: inode.ino });
    if (inode.flags & INODE_FLAGS.COMPR)
      throw unsupported(this.name, 'compression', `inode ${inode.ino} is compressed`, { ino: inode.ino });
  }
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `invalid range ${offset}+${length}`, { offset, length });
  }
}

/**
 * A device inode's number (inodes.rst "i_block"): the old 16-bit form in i_block[0], else the new
 * form in i_block[1]; returned as Linux's new_encode_dev (what stat's st_rdev shows for majors < 4096).
 */
function deviceNumber(iBlock: Buffer): number {
  const old = iBlock.readUInt32LE(0);
  let major: number;
  let minor: number;
  if (old !== 0) {
    major = (old >>> 8) & 0xff;
    minor = old & 0xff;
  } else {
    const dev = iBlock.readUInt32LE(4);
    major = (dev & 0xfff00) >>> 8;
    minor = (dev & 0xff) | ((dev >>> 12) & 0xfff00);
  }
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}
