// Decoders of the leaf items the reader uses, each checked against the item's size: a damaged or
// hostile item is named by `where` (tree and objectid) in the error.
import type { GuestNodeType } from '../../../core/guest-filesystem.js';
import { formatInvalid } from './errors.js';
import type { Key } from './keys.js';
import { DIR_ITEM, DISK_KEY, FILE_TYPES, INODE_ITEM, MODE, ROOT_ITEM, ROOT_REF } from './layout.js';

export interface InodeItem {
  readonly type: GuestNodeType;
  /** The whole mode (type and permission bits). */
  readonly mode: number;
  readonly size: number;
  readonly nbytes: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev: bigint;
  readonly flags: number;
  readonly atimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly otimeNs: bigint;
}

const TYPES: ReadonlyMap<number, GuestNodeType> = new Map([
  [MODE.S_IFREG, 'file'],
  [MODE.S_IFDIR, 'dir'],
  [MODE.S_IFLNK, 'symlink'],
  [MODE.S_IFCHR, 'char'],
  [MODE.S_IFBLK, 'block'],
  [MODE.S_IFIFO, 'fifo'],
  [MODE.S_IFSOCK, 'socket'],
]);

/** struct btrfs_timespec as nanoseconds: signed 64-bit seconds, 32-bit nanoseconds. */
function timespec(bytes: Buffer, at: number): bigint {
  return bytes.readBigInt64LE(at) * 1_000_000_000n + BigInt(bytes.readUInt32LE(at + INODE_ITEM.TIMESPEC_NSEC));
}

/** Decodes a btrfs_inode_item (an INODE_ITEM's data, or the head of a ROOT_ITEM). */
export function decodeInodeItem(bytes: Buffer, volume: string, where: string): InodeItem {
  if (bytes.length < INODE_ITEM.SIZE) throw formatInvalid(volume, where, `inode item of ${bytes.length} bytes is truncated`);
  const mode = bytes.readUInt32LE(INODE_ITEM.mode);
  const type = TYPES.get(mode & MODE.S_IFMT);
  if (!type) throw formatInvalid(volume, where, `unknown file type in mode 0o${mode.toString(8)}`, { mode });
  const size = bytes.readBigUInt64LE(INODE_ITEM.size);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw formatInvalid(volume, where, `size ${size} is beyond what can be read`);
  const nbytes = bytes.readBigUInt64LE(INODE_ITEM.nbytes);
  return {
    type,
    mode,
    size: Number(size),
    nbytes: nbytes > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(nbytes),
    nlink: bytes.readUInt32LE(INODE_ITEM.nlink),
    uid: bytes.readUInt32LE(INODE_ITEM.uid),
    gid: bytes.readUInt32LE(INODE_ITEM.gid),
    rdev: bytes.readBigUInt64LE(INODE_ITEM.rdev),
    flags: Number(bytes.readBigUInt64LE(INODE_ITEM.flags) & 0xffffffffn),
    atimeNs: timespec(bytes, INODE_ITEM.atime),
    ctimeNs: timespec(bytes, INODE_ITEM.ctime),
    mtimeNs: timespec(bytes, INODE_ITEM.mtime),
    otimeNs: timespec(bytes, INODE_ITEM.otime),
  };
}

export interface DirItem {
  readonly location: Key;
  /** The BTRFS_FT_* byte. */
  readonly fileType: number;
  readonly name: Buffer;
}

export function readDiskKey(bytes: Buffer, at: number): Key {
  return {
    objectid: bytes.readBigUInt64LE(at + DISK_KEY.objectid),
    type: bytes[at + DISK_KEY.type]!,
    offset: bytes.readBigUInt64LE(at + DISK_KEY.offset),
  };
}

/**
 * The btrfs_dir_item entries packed in one DIR_ITEM or DIR_INDEX item (names whose hashes collide
 * share one DIR_ITEM). Names are views into `bytes`.
 */
export function decodeDirItems(bytes: Buffer, volume: string, where: string): DirItem[] {
  const out: DirItem[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + DIR_ITEM.SIZE > bytes.length) throw formatInvalid(volume, where, 'directory item header is truncated');
    const nameLen = bytes.readUInt16LE(at + DIR_ITEM.name_len);
    const dataLen = bytes.readUInt16LE(at + DIR_ITEM.data_len);
    if (nameLen === 0 || nameLen > DIR_ITEM.MAX_NAME_LEN) throw formatInvalid(volume, where, `name length ${nameLen} is invalid`);
    const end = at + DIR_ITEM.SIZE + nameLen + dataLen;
    if (end > bytes.length) throw formatInvalid(volume, where, `an entry of ${nameLen}+${dataLen} bytes overruns the item`);
    const fileType = bytes[at + DIR_ITEM.type]!;
    out.push({
      location: readDiskKey(bytes, at + DIR_ITEM.location),
      fileType,
      name: bytes.subarray(at + DIR_ITEM.SIZE, at + DIR_ITEM.SIZE + nameLen),
    });
    at = end;
  }
  return out;
}

export function fileTypeName(fileType: number): GuestNodeType | undefined {
  return FILE_TYPES[fileType as keyof typeof FILE_TYPES];
}

export interface RootItem {
  readonly bytenr: number;
  readonly level: number;
  readonly generation: bigint;
  readonly rootDirid: bigint;
  readonly refs: number;
  readonly flags: bigint;
  readonly inode: InodeItem;
}

/** Decodes a btrfs_root_item: where a tree's root block is and which generation it carries. */
export function decodeRootItem(bytes: Buffer, volume: string, where: string): RootItem {
  if (bytes.length < ROOT_ITEM.MIN_SIZE) throw formatInvalid(volume, where, `root item of ${bytes.length} bytes is truncated`);
  const bytenr = bytes.readBigUInt64LE(ROOT_ITEM.bytenr);
  if (bytenr === 0n || bytenr > BigInt(Number.MAX_SAFE_INTEGER))
    throw formatInvalid(volume, where, `root block address ${bytenr} is invalid`);
  return {
    bytenr: Number(bytenr),
    level: bytes[ROOT_ITEM.level]!,
    generation: bytes.readBigUInt64LE(ROOT_ITEM.generation),
    rootDirid: bytes.readBigUInt64LE(ROOT_ITEM.root_dirid),
    refs: bytes.readUInt32LE(ROOT_ITEM.refs),
    flags: bytes.readBigUInt64LE(ROOT_ITEM.flags),
    inode: decodeInodeItem(bytes, volume, where),
  };
}

export interface RootRef {
  readonly dirid: bigint;
  readonly sequence: bigint;
  readonly name: Buffer;
}

/** Decodes a btrfs_root_ref (ROOT_REF / ROOT_BACKREF): the directory and name that link a subvolume. */
export function decodeRootRef(bytes: Buffer, volume: string, where: string): RootRef {
  if (bytes.length < ROOT_REF.SIZE) throw formatInvalid(volume, where, 'root ref is truncated');
  const nameLen = bytes.readUInt16LE(ROOT_REF.name_len);
  if (nameLen === 0 || ROOT_REF.SIZE + nameLen > bytes.length)
    throw formatInvalid(volume, where, `root ref name of ${nameLen} bytes overruns the item`);
  return {
    dirid: bytes.readBigUInt64LE(ROOT_REF.dirid),
    sequence: bytes.readBigUInt64LE(ROOT_REF.sequence),
    name: bytes.subarray(ROOT_REF.SIZE, ROOT_REF.SIZE + nameLen),
  };
}
