import { BoundedCache } from '../../../util/bounded-cache.js';
import { formatInvalid } from './errors.js';
import type { GroupDescriptors } from './group-descriptors.js';
import { decodeInode, inodeFootprint, type Ext4Inode } from './inode.js';
import { GROUP_DESC, ROOT_INO } from './layout.js';
import type { Superblock } from './superblock.js';
import type { VolumeIO } from './volume-io.js';

/**
 * Inode-table reads come in windows of this many bytes (256 inodes of 256 bytes): a directory's
 * inodes are usually allocated together, so a tree walk that stats every entry reads each window
 * once instead of one block per inode.
 */
const WINDOW_BYTES = 64 * 1024;

/** Finds, reads (a window at a time), checks and caches inodes. */
export class InodeTable {
  private readonly windows: BoundedCache<number, Buffer>;
  private readonly inodes: BoundedCache<number, Ext4Inode>;
  private readonly windowBytes: number;
  private readonly tableBytes: number;

  constructor(
    private readonly io: VolumeIO,
    private readonly sb: Superblock,
    private readonly groups: GroupDescriptors,
    cacheBytes: number,
  ) {
    this.tableBytes = sb.inodesPerGroup * sb.inodeSize;
    this.windowBytes = Math.max(sb.blockSize, Math.min(WINDOW_BYTES, Math.ceil(this.tableBytes / sb.blockSize) * sb.blockSize));
    this.windows = new BoundedCache(Math.floor(cacheBytes / 2), (b) => b.length + 64);
    this.inodes = new BoundedCache(Math.floor(cacheBytes / 2), inodeFootprint);
  }

  /** True for the inode numbers a directory entry may name: the root and the non-reserved ones. */
  isValidNumber(ino: number): boolean {
    return ino === ROOT_INO || (ino >= this.sb.firstIno && ino <= this.sb.inodesCount);
  }

  get(ino: number): Promise<Ext4Inode> {
    if (!Number.isSafeInteger(ino) || !this.isValidNumber(ino)) {
      return Promise.reject(formatInvalid(this.io.name, `inode ${ino}`, 'is not a valid inode number', { ino }));
    }
    return this.inodes.get(ino, () => this.load(ino));
  }

  private async load(ino: number): Promise<Ext4Inode> {
    const sb = this.sb;
    const group = Math.floor((ino - 1) / sb.inodesPerGroup);
    const index = (ino - 1) % sb.inodesPerGroup;
    const desc = await this.groups.get(group);
    if (desc.flags & GROUP_DESC.INODE_UNINIT) {
      throw formatInvalid(this.io.name, `inode ${ino}`, `lies in group ${group}, whose inode table is uninitialised`, { ino, group });
    }
    const byteInTable = index * sb.inodeSize;
    const window = Math.floor(byteInTable / this.windowBytes);
    const key = group * 2 ** 20 + window;
    const bytes = await this.windows.get(key, () => this.readWindow(desc.inodeTable, window, ino));
    const at = byteInTable - window * this.windowBytes;
    return decodeInode(bytes.subarray(at, at + sb.inodeSize), ino, sb, this.io.name);
  }

  private async readWindow(inodeTable: number, window: number, ino: number): Promise<Buffer> {
    const bs = this.sb.blockSize;
    const start = window * this.windowBytes;
    const length = Math.min(this.windowBytes, Math.ceil(this.tableBytes / bs) * bs - start);
    return this.io.readBlocks(inodeTable + start / bs, length / bs, `inode ${ino} table`);
  }
}
