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
import { AttributeData, type AttributeRef } from './attribute-data.js';
import { readBootSector, type BootSector } from './boot-sector.js';
import { Collation } from './collation.js';
import { DirectoryIndex } from './directory.js';
import { formatInvalid, recordName, unsupported } from './errors.js';
import type { IndexEntry } from './index-node.js';
import { ATTR_TYPE, BOOT, FILE_ATTR, FILE_NAME_TYPE, MAX_NAME_UNITS, SYSTEM_FILES, UPCASE } from './layout.js';
import { windowsLinkTarget, type LinkResolver } from './link-target.js';
import { Mft } from './mft.js';
import { fromWtf8, toWtf8 } from './names.js';
import { nodeFacts, plainFacts, type NodeFacts } from './node-kind.js';
import { buildStat } from './node-stat.js';
import { assembleNode, findAttribute, isDirectoryNode, type NtfsAttribute, type NtfsNode, type RecordSource } from './node.js';
import { REPARSE_TAG_NAMES } from './reparse.js';
import { volumeInformation } from './volume-information.js';
import { VolumeIO } from './volume-io.js';

const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
/**
 * Node ids: the MFT record number (what ntfs-3g shows as st_ino, shared by hard links), with the
 * ordinal of a named data stream (1 for the first) in the bits above 48, so that `file:stream` is
 * a node of its own (see `lookup`).
 */
const STREAM_SHIFT = 48n;
const RECORD_MASK = (1n << STREAM_SHIFT) - 1n;
const MAX_STREAMS = 0xffff;

/**
 * A read-only NTFS volume (see GuestFileSystem for the contract). How Windows things appear:
 *
 * - Ids: the MFT record number, as ntfs-3g's st_ino (hard links share it); a named data stream is
 *   the record number plus its ordinal (1 for the first) above bit 48.
 * - Listings: one entry per link. An 8.3 alias (a DOS-namespace name beside a Win32 one) is not
 *   listed but resolves by lookup; POSIX, Win32 and Win32&DOS names are listed. As in ntfs-3g, the
 *   metadata files ($MFT … $Extend, records below 16) and the root's entry for itself are not
 *   listed; they resolve by lookup ($MFT reads as a file).
 * - Lookups: exact (case-sensitive, as ntfs-3g mounts), descending the B+tree by the volume's
 *   $UpCase collation.
 * - Alternate data streams: `name:stream` looks up stream `stream` of `name` (the stream name
 *   matching ignoring case, as Windows matches it) as a regular file of its own, what
 *   streams_interface=windows shows in ntfs-3g; streams are never listed. A real name that
 *   contains ':' (possible in the POSIX namespace) wins over a stream.
 * - Symlinks: IO_REPARSE_TAG_SYMLINK, junctions (MOUNT_POINT), WSL symlinks and Interix symlinks;
 *   targets as link-target.ts converts them (on-volume targets from the volume root).
 * - Special files: WSL fifos, sockets and devices ($LXDEV), and Interix ones, as ntfs-3g shows them.
 * - Other reparse points (deduplicated, WOF-compressed, cloud placeholders…): the file or directory
 *   they are; reading such a file is ERR_UNSUPPORTED naming the tag, since its data is elsewhere.
 * - EFS-encrypted data: ERR_UNSUPPORTED for that file (stat and listings work).
 * - Metadata: modes synthesized (node-stat.ts), uid and gid 0, times exact to the 100 ns,
 *   directory sizes as their index allocation (as ntfs-3g), `attributes` from the Windows file
 *   attributes.
 * - A dirty volume or a replaced copy (backup boot sector, $MFTMirr) is read as is and noted.
 */
export class NtfsFileSystem implements GuestFileSystem {
  readonly type = 'ntfs';
  readonly rootId: GuestNodeId = BigInt(SYSTEM_FILES.ROOT);
  readonly uuid: string;
  label?: string;
  /** NTFS version of the volume, `major.minor`. */
  version = '';
  /** What the reader could not honour but read anyway (a dirty volume, a damaged copy it replaced). */
  readonly notes: string[];
  private readonly data: AttributeData;
  private readonly dirs: DirectoryIndex;
  private readonly nodes: BoundedCache<number, NtfsNode>;
  private readonly targets: BoundedCache<number, Buffer>;
  private readonly facts = new WeakMap<NtfsNode, Promise<NodeFacts>>();
  private collation?: Promise<Collation | undefined>;

  private constructor(
    private readonly io: VolumeIO,
    private readonly mft: Mft,
    private readonly name: string,
    boot: BootSector,
    cacheBytes: number,
    notes: string[],
  ) {
    this.uuid = boot.serial.toUpperCase();
    this.notes = notes;
    const share = (sixteenths: number): number => Math.floor((cacheBytes * sixteenths) / 16);
    this.data = new AttributeData(io, share(3));
    this.dirs = new DirectoryIndex(this.data, name, io.clusterSize, () => this.upcase(), share(4));
    this.nodes = new BoundedCache(share(3), (n) => n.footprint);
    this.targets = new BoundedCache(share(1), (b) => b.length + 64);
  }

  static async open(volume: BlockReader, options: GuestOpenOptions): Promise<NtfsFileSystem> {
    const name = options.name;
    const cacheBytes = options.metadataCacheBytes ?? DEFAULT_CACHE_BYTES;
    if (volume.size < BOOT.SIZE) throw formatInvalid(name, 'boot sector', 'the volume is too small');
    const notes: string[] = [];
    const boot = await readBootSector(volume, name, notes);
    const io = new VolumeIO(volume, name, boot.clusterSize, boot.clusterCount);
    // A share of the cache for the MFT windows and records; the rest goes to the decoded views.
    const mft = await Mft.open(io, boot, Math.floor((cacheBytes * 5) / 16), notes);
    const fs = new NtfsFileSystem(io, mft, name, boot, cacheBytes, notes);
    await fs.readVolumeInformation();
    const root = await fs.node(SYSTEM_FILES.ROOT);
    if (!isDirectoryNode(root)) throw formatInvalid(name, recordName(SYSTEM_FILES.ROOT), 'the root is not a directory');
    fs.dirs.root(root);
    return fs;
  }

  async stat(id: GuestNodeId): Promise<GuestStat> {
    const { record, stream } = this.splitId(id);
    const node = await this.node(record);
    const facts = await this.factsOf(node);
    if (!node.info) throw formatInvalid(this.name, recordName(record), 'has no $STANDARD_INFORMATION');
    if (stream > 0) return buildStat(id, node, facts, this.layoutOf(node, this.streamAttribute(node, stream, id)).dataSize, true);
    return buildStat(id, node, facts, await this.sizeOf(node, facts), false);
  }

  async lookup(dirId: GuestNodeId, name: Buffer): Promise<GuestDirEntry | undefined> {
    const dir = await this.directory(dirId);
    const units = name.length <= MAX_NAME_UNITS * 3 * 2 + 1 ? fromWtf8(name) : undefined;
    if (units === undefined || units.length === 0 || units === '.' || units === '..') return undefined;
    if (units.length <= MAX_NAME_UNITS) {
      const entry = await this.dirs.lookup(dir, units);
      if (entry) return { name: Buffer.from(name), id: this.entryId(dir, entry) };
    }
    // Alternate data streams as `file:stream` (ntfs-3g's streams_interface=windows): never listed.
    const colon = units.indexOf(':');
    if (colon <= 0 || colon === units.length - 1) return undefined;
    const base = await this.dirs.lookup(dir, units.slice(0, colon));
    if (!base) return undefined;
    const file = await this.node(this.entryRecord(dir, base));
    const wanted = units.slice(colon + 1);
    const streams = namedStreams(file);
    const collation = await this.upcase();
    let ordinal = streams.findIndex((s) => s.name === wanted);
    if (ordinal < 0 && collation) ordinal = streams.findIndex((s) => collation.compareIgnoringCase(s.name, wanted) === 0);
    if (ordinal < 0 || ordinal >= MAX_STREAMS) return undefined;
    return {
      name: toWtf8(`${base.name}:${streams[ordinal]!.name}`),
      id: BigInt(base.record) | (BigInt(ordinal + 1) << STREAM_SHIFT),
      type: 'file',
    };
  }

  async *readdir(dirId: GuestNodeId): AsyncIterable<GuestDirEntry> {
    const dir = await this.directory(dirId);
    for await (const node of this.dirs.nodes(dir)) {
      for (const e of node.entries) {
        // As ntfs-3g's ntfs_filldir and ntfs_fuse_filler: one entry per link (8.3 aliases are the
        // same link), neither the root's entry for itself nor the metadata files.
        if (e.namespace === FILE_NAME_TYPE.DOS || e.record === SYSTEM_FILES.ROOT || e.record < SYSTEM_FILES.FIRST_USER) continue;
        if (e.name === '.' || e.name === '..') continue;
        const id = this.entryId(dir, e);
        const type = entryType(e.fileAttributes);
        yield type ? { name: toWtf8(e.name), id, type } : { name: toWtf8(e.name), id };
      }
    }
  }

  async read(id: GuestNodeId, offset: number, length: number): Promise<Buffer> {
    checkRange(offset, length);
    const ref = await this.fileData(id);
    return ref ? this.data.read(ref, offset, length) : Buffer.alloc(0);
  }

  async extents(id: GuestNodeId, offset: number, length: number): Promise<GuestFileExtent[]> {
    checkRange(offset, length);
    const ref = await this.fileData(id);
    return ref ? this.data.extents(ref, offset, length) : [];
  }

  async readlink(id: GuestNodeId): Promise<Buffer> {
    const { record, stream } = this.splitId(id);
    const node = await this.node(record);
    const facts = await this.factsOf(node);
    if (stream > 0 || facts.kind.type !== 'symlink')
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: ${recordName(record)} is not a symlink`, { id: String(id) });
    return this.linkTarget(node, facts);
  }

  /** The decoded node of base record `record` (in use, a file or directory). */
  private node(record: number): Promise<NtfsNode> {
    return this.nodes.get(record, async () => assembleNode(await this.mft.record(record), this.recordSource()));
  }

  private recordSource(): RecordSource {
    return {
      volume: this.name,
      recordCount: this.mft.recordCount,
      record: (n) => this.mft.record(n),
      readNonResident: async (attr, where, maxBytes) => {
        const ref = { node: stubNode(attr.extents[0]!.record, attr), attr };
        const size = this.data.layout(ref).dataSize;
        if (size > maxBytes) throw formatInvalid(this.name, where, `is ${size} bytes, beyond ${maxBytes}`);
        return this.data.read(ref, 0, size);
      },
    };
  }

  private factsOf(node: NtfsNode): Promise<NodeFacts> {
    const plain = plainFacts(node);
    if (plain) return Promise.resolve(plain);
    let facts = this.facts.get(node);
    if (!facts) {
      facts = nodeFacts(node, this.data, this.name);
      this.facts.set(node, facts);
      facts.catch(() => this.facts.delete(node));
    }
    return facts;
  }

  private async sizeOf(node: NtfsNode, facts: NodeFacts): Promise<number> {
    switch (facts.kind.type) {
      case 'dir':
        return this.dirs.allocationSize(node);
      case 'symlink':
        return (await this.linkTarget(node, facts)).length;
      default: {
        const attr = findAttribute(node, ATTR_TYPE.DATA);
        return attr ? this.layoutOf(node, attr).dataSize : 0;
      }
    }
  }

  private layoutOf(node: NtfsNode, attr: NtfsAttribute): ReturnType<AttributeData['layout']> {
    return this.data.layout({ node, attr });
  }

  private linkTarget(node: NtfsNode, facts: NodeFacts): Promise<Buffer> {
    return this.targets.get(node.record, async () => {
      const kind = facts.kind;
      if (kind.type !== 'symlink') throw new Error('not a symlink');
      const link = kind.link;
      if (link.kind === 'wsl') return link.target;
      if (link.kind === 'interix') return toWtf8(link.target);
      const linkDir = node.names.find((n) => n.namespace !== FILE_NAME_TYPE.DOS)?.parent ?? SYSTEM_FILES.ROOT;
      return toWtf8(await windowsLinkTarget(link.substituteName, linkDir, this.linkResolver()));
    });
  }

  private linkResolver(): LinkResolver {
    return {
      root: SYSTEM_FILES.ROOT,
      // A damaged directory on the way only stops the correction: the link itself is still readable.
      child: async (dirRecord, name) => {
        try {
          const dir = await this.node(dirRecord);
          if (!isDirectoryNode(dir) || name.length > MAX_NAME_UNITS) return undefined;
          const entry = await this.dirs.lookup(dir, name, true);
          if (!entry) return undefined;
          const child = await this.node(this.entryRecord(dir, entry));
          const plainDir = isDirectoryNode(child) && !((child.info?.fileAttributes ?? 0) & FILE_ATTR.REPARSE_POINT);
          return { record: child.record, name: entry.name, directory: plainDir };
        } catch (err) {
          if (err instanceof CairnError && err.code === 'ERR_FORMAT_INVALID') return undefined;
          throw err;
        }
      },
      parent: async (record) => {
        const node = await this.node(record);
        const parent = node.names.find((n) => n.namespace !== FILE_NAME_TYPE.DOS)?.parent ?? SYSTEM_FILES.ROOT;
        return parent < this.mft.recordCount ? parent : SYSTEM_FILES.ROOT;
      },
    };
  }

  /** The data attribute `read` and `extents` use: the unnamed $DATA of a regular file, or a stream. */
  private async fileData(id: GuestNodeId): Promise<AttributeRef | undefined> {
    const { record, stream } = this.splitId(id);
    const node = await this.node(record);
    if (stream > 0) return { node, attr: this.streamAttribute(node, stream, id) };
    const facts = await this.factsOf(node);
    if (facts.kind.type !== 'file')
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: ${recordName(record)} is not a regular file`, { id: String(id) });
    const tag = facts.kind.unsupportedTag;
    if (tag !== undefined) {
      const what = REPARSE_TAG_NAMES[tag] ?? 'an unknown kind';
      throw unsupported(this.name, `reparse tag 0x${tag.toString(16)}`, `${recordName(record)} keeps its data elsewhere (${what})`, {
        record,
      });
    }
    const attr = findAttribute(node, ATTR_TYPE.DATA);
    return attr ? { node, attr } : undefined;
  }

  private streamAttribute(node: NtfsNode, stream: number, id: GuestNodeId): NtfsAttribute {
    const attr = namedStreams(node)[stream - 1];
    if (!attr) throw new CairnError('ERR_NOT_FOUND', `${this.name}: no stream ${stream} in ${recordName(node.record)}`, { id: String(id) });
    return attr;
  }

  private async directory(id: GuestNodeId): Promise<NtfsNode> {
    const { record, stream } = this.splitId(id);
    const node = await this.node(record);
    const facts = await this.factsOf(node);
    if (stream > 0 || facts.kind.type !== 'dir')
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: ${recordName(record)} is not a directory`, { id: String(id) });
    return node;
  }

  private splitId(id: GuestNodeId): { record: number; stream: number } {
    if (typeof id !== 'bigint' || id < 0n || Number(id & RECORD_MASK) >= this.mft.recordCount || id >> STREAM_SHIFT > BigInt(MAX_STREAMS)) {
      throw new CairnError('ERR_NOT_FOUND', `${this.name}: no node ${String(id)}`, { id: String(id) });
    }
    return { record: Number(id & RECORD_MASK), stream: Number(id >> STREAM_SHIFT) };
  }

  /** An index entry's record, checked to lie in the MFT (a directory naming anything else is damaged). */
  private entryRecord(dir: NtfsNode, entry: IndexEntry): number {
    if (entry.record >= this.mft.recordCount) {
      throw formatInvalid(this.name, `directory ${recordName(dir.record)}`, `entry names record ${entry.record}, beyond the MFT`, {
        record: dir.record,
      });
    }
    return entry.record;
  }

  private entryId(dir: NtfsNode, entry: IndexEntry): GuestNodeId {
    return BigInt(this.entryRecord(dir, entry));
  }

  /** $Volume: the version (refused when unknown), the dirty flag (noted) and the label. */
  private async readVolumeInformation(): Promise<void> {
    const info = volumeInformation(await this.node(SYSTEM_FILES.VOLUME), this.name);
    this.version = info.version;
    if (info.label !== undefined) this.label = info.label;
    if (info.dirty) this.notes.push('the volume is marked dirty: files are read as last written in place, without replaying $LogFile');
  }

  /** The $UpCase collation, loaded on first use; undefined (lookups then scan) when it is unusable. */
  private upcase(): Promise<Collation | undefined> {
    this.collation ??= (async () => {
      try {
        const node = await this.node(SYSTEM_FILES.UPCASE);
        const attr = findAttribute(node, ATTR_TYPE.DATA);
        const table = attr ? Collation.fromBytes(await this.data.read({ node, attr }, 0, UPCASE.SIZE + 1)) : undefined;
        if (!table) this.notes.push('$UpCase is not a 64 Ki-entry table: directory lookups scan instead of descending');
        return table;
      } catch (err) {
        if (!(err instanceof CairnError)) throw err;
        this.notes.push(`$UpCase is unreadable (${err.message}): directory lookups scan instead of descending`);
        return undefined;
      }
    })();
    return this.collation;
  }
}

/** The named $DATA attributes (alternate data streams) of a node, in attribute order. */
function namedStreams(node: NtfsNode): NtfsAttribute[] {
  return node.attributes.filter((a) => a.type === ATTR_TYPE.DATA && a.name !== '');
}

/** The type an index entry's $FILE_NAME flags tell for sure (plain directories and plain files). */
function entryType(fileAttributes: number): 'dir' | 'file' | undefined {
  if (fileAttributes & (FILE_ATTR.REPARSE_POINT | FILE_ATTR.SYSTEM)) return undefined;
  return fileAttributes & FILE_ATTR.I30_INDEX_PRESENT ? 'dir' : 'file';
}

/** A node standing for a file while it is assembled (runlists of its attribute list are keyed by record). */
function stubNode(record: number, attr: NtfsAttribute): NtfsNode {
  return { record, sequence: 0, recordFlags: 0, linkCount: 0, names: [], attributes: [attr], footprint: 0 };
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `invalid range ${offset}+${length}`, { offset, length });
  }
}
