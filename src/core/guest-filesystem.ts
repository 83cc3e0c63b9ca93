import type { BlockReader } from './block-reader.js';

/**
 * The read-only view of one guest filesystem (ext4, FAT, XFS, NTFS, btrfs) that single-file restore
 * serves through URLs, the FUSE tree and the CLI. Implementations live in `src/guest/fs/<type>/` and
 * read a volume (`BlockReader`: a whole disk, a partition, an LVM logical volume); every byte they
 * read is untrusted: a damaged or hostile structure rejects with ERR_FORMAT_INVALID naming the inode
 * (or structure), an unsupported incompatible feature with ERR_UNSUPPORTED naming the feature. Never
 * a crash, a hang or an unbounded allocation.
 *
 * Nodes are named by `GuestNodeId`: a filesystem's own inode number (ext4, XFS), MFT reference
 * (NTFS), (subvolume, objectid) packed by the reader (btrfs), or a synthetic id (FAT). Hard links
 * share one id. Ids are bigints because XFS and btrfs numbers can exceed 2^53.
 */
export type GuestNodeId = bigint;

export type GuestNodeType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface GuestStat {
  readonly id: GuestNodeId;
  readonly type: GuestNodeType;
  /** Logical size in bytes (a symlink: its target's length). */
  readonly size: number;
  /** Permission bits with setuid, setgid and sticky (0o7777); filesystems without modes synthesize them. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  /** Nanoseconds since the Unix epoch (negative before 1970), exact to the filesystem's precision. */
  readonly mtimeNs: bigint;
  readonly atimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly birthtimeNs?: bigint;
  /**
   * Device number of a char or block special file as Linux's st_rdev encodes it (new_encode_dev:
   * minor bits 0-7, major bits 8-19, minor bits 8-19 at 20-31; major << 8 | minor when both are small).
   */
  readonly rdev?: number;
  /** Filesystem-specific flags worth showing (FAT/NTFS: 'readonly', 'hidden', 'system', 'archive', 'compressed', 'sparse'…). */
  readonly attributes?: readonly string[];
}

export interface GuestDirEntry {
  /**
   * The name as the guest stores it, as bytes. Filesystems that store UTF-16 (FAT long names, NTFS)
   * convert to UTF-8, writing an unpaired surrogate as its 3-byte (WTF-8) form so that the namespace
   * escapes it reversibly rather than losing it. Never '.' or '..'.
   */
  readonly name: Buffer;
  readonly id: GuestNodeId;
  /** Set when the directory entry records it (ext4 filetype, XFS ftype); otherwise `stat` tells. */
  readonly type?: GuestNodeType;
}

/**
 * A piece of a regular file: bytes stored on the volume, or a hole / unwritten range that reads as
 * zeros. `volumeRanges`, when known, are the volume byte ranges the extent's content is decoded from
 * (the data itself, or the compressed run): two versions of a file whose extents have identical
 * offsets, lengths and volume ranges over identical stored chunks have identical content, so
 * `cairn versions` can tell without reading them. Data kept inside metadata (ext4 inline data, NTFS
 * resident data, btrfs inline extents) has no `volumeRanges`.
 */
export interface GuestFileExtent {
  /** Offset in the file. */
  readonly offset: number;
  readonly length: number;
  readonly kind: 'data' | 'zero';
  readonly volumeRanges?: readonly { readonly offset: number; readonly length: number }[];
}

export interface GuestFileSystem {
  /** Short type name: 'ext2', 'ext3', 'ext4', 'vfat', 'xfs', 'ntfs', 'btrfs'. */
  readonly type: string;
  readonly label?: string;
  readonly uuid?: string;
  readonly rootId: GuestNodeId;
  stat(id: GuestNodeId): Promise<GuestStat>;
  /** The entry `name` (bytes as in `GuestDirEntry.name`) of directory `dirId`, or undefined. */
  lookup(dirId: GuestNodeId, name: Buffer): Promise<GuestDirEntry | undefined>;
  /**
   * The entries of a directory in its own order, without '.' and '..'. Streamed: memory stays bounded
   * whatever the directory's size; a loop or a count beyond the directory's own size is an error.
   */
  readdir(dirId: GuestNodeId): AsyncIterable<GuestDirEntry>;
  /** Reads up to `length` bytes at `offset` of a regular file; shorter only at end of file. */
  read(id: GuestNodeId, offset: number, length: number): Promise<Buffer>;
  /** A symlink's target, as bytes. */
  readlink(id: GuestNodeId): Promise<Buffer>;
  /** Data and holes of [offset, offset+length) of a regular file, in order and without gaps (clipped to the size). */
  extents(id: GuestNodeId, offset: number, length: number): Promise<GuestFileExtent[]>;
}

/** One filesystem type's entry in the probe table: recognises its superblock and opens it. */
export interface GuestFileSystemDriver {
  readonly type: string;
  /** True when the volume's bytes carry this filesystem's signature (cheap: a few small reads). */
  probe(volume: BlockReader): Promise<boolean>;
  /** Opens the filesystem; `name` labels errors (for example `web/20261121T051233Z/sda/p1`). */
  open(volume: BlockReader, options: GuestOpenOptions): Promise<GuestFileSystem>;
}

export interface GuestOpenOptions {
  /** What error messages call the volume. */
  readonly name: string;
  /** Bytes of decoded metadata (inodes, directory blocks, extent and B-tree nodes) to keep cached. */
  readonly metadataCacheBytes?: number;
}
