import type { BlockReader } from '../../../core/block-reader.js';
import { CairnError } from '../../../core/errors.js';
import type { GuestDirEntry, GuestFileExtent, GuestFileSystem, GuestOpenOptions, GuestStat } from '../../../core/guest-filesystem.js';
import { BoundedCache } from '../../../util/bounded-cache.js';
import { clusterOffset, parseBootSector, type FatGeometry } from './boot-sector.js';
import { EMPTY_RUNS, walkChain, type ClusterRuns } from './cluster-chain.js';
import { entryKind, firstClusterOf, isDotDot, parseShortEntry, type ShortEntry } from './dir-entry.js';
import { DirIndex } from './dir-index.js';
import { DirectoryBlocks, type DirectoryBlock, type DirectoryLocation } from './directory-blocks.js';
import { scanDirectory } from './directory-scan.js';
import { FatTable, type FatPiece } from './fat-table.js';
import { BOOT_SECTOR, DIR_ENTRY, DIR_ENTRY_SIZE, FAT_TYPE_LIMITS, MAX_DIR_ENTRIES } from './layout.js';
import { foldUnits, utf16FromWtf8 } from './long-name.js';
import { decodeNodeId, ROOT_ID } from './node-id.js';
import { statOfEntry, statOfRoot } from './node-stat.js';
import { decodeCp437, shortNameOf } from './short-name.js';
import { readVolume, readVolumeInto } from './volume-bytes.js';

/** Metadata cache when the caller names none: a whole FAT32 FAT of 2 M clusters fits, as do big directories. */
export const DEFAULT_FAT_CACHE_BYTES = 32 * 1024 * 1024;

interface LiveEntry {
  readonly entry: ShortEntry;
  readonly isDir: boolean;
  readonly parentCluster: number;
}

interface OpenDirectory {
  /** First cluster, 0 for the root. */
  readonly cluster: number;
  readonly location: DirectoryLocation;
  readonly length: number;
}

/** A FAT12/16/32 volume with VFAT long names, read-only (see the module files for each structure). */
export class FatFileSystem implements GuestFileSystem {
  readonly type = 'vfat';
  readonly rootId = ROOT_ID;
  readonly uuid?: string;
  private volumeLabel?: string;

  private readonly fat: FatTable;
  private readonly blocks: DirectoryBlocks;
  private readonly chains: BoundedCache<string, ClusterRuns>;
  private readonly indexes: BoundedCache<number, DirIndex>;
  private readonly directories: BoundedCache<bigint, OpenDirectory>;
  private readonly maxDirClusters: number;

  private constructor(
    private readonly volume: BlockReader,
    readonly geometry: FatGeometry,
    private readonly name: string,
    cacheBytes: number,
  ) {
    // Shares of the budget by how much each kind of metadata is worth keeping.
    const share = (eighths: number): number => Math.floor((cacheBytes * eighths) / 8);
    this.fat = new FatTable(volume, geometry, new BoundedCache<number, FatPiece>(share(3), (p) => p.bytes.length + 64), name);
    this.blocks = new DirectoryBlocks(
      volume,
      geometry,
      new BoundedCache<number, DirectoryBlock>(share(2), (b) => b.bytes.length + 64),
      name,
    );
    this.indexes = new BoundedCache<number, DirIndex>(share(2), (index) => index.byteSize);
    this.chains = new BoundedCache<string, ClusterRuns>(share(1) / 2, (runs) => runs.byteSize);
    this.directories = new BoundedCache<bigint, OpenDirectory>(
      share(1) / 2,
      (d) => ('runs' in d.location ? d.location.runs.byteSize : 0) + 96,
    );
    this.maxDirClusters = Math.ceil((MAX_DIR_ENTRIES * DIR_ENTRY_SIZE) / geometry.clusterSize);
    if (geometry.volumeId !== undefined) {
      const hex = geometry.volumeId.toString(16).toUpperCase().padStart(8, '0');
      this.uuid = `${hex.slice(0, 4)}-${hex.slice(4)}`;
    }
  }

  static async open(volume: BlockReader, options: GuestOpenOptions): Promise<FatFileSystem> {
    const sector = await readVolume(volume, 0, BOOT_SECTOR.probeLength, 'the boot sector', options.name);
    const geometry = parseBootSector(sector, volume.size, options.name);
    const fs = new FatFileSystem(volume, geometry, options.name, options.metadataCacheBytes ?? DEFAULT_FAT_CACHE_BYTES);
    fs.volumeLabel = await fs.readLabel();
    return fs;
  }

  get label(): string | undefined {
    return this.volumeLabel;
  }

  async stat(id: bigint): Promise<GuestStat> {
    if (id === ROOT_ID) return statOfRoot(id, (await this.directory(id)).length);
    const live = await this.entryAt(id);
    const size = live.isDir
      ? (await this.directoryChain(live.entry.firstCluster, this.describe(live.entry, id))).clusters * this.geometry.clusterSize
      : live.entry.size;
    return statOfEntry(id, live.entry, live.isDir, size);
  }

  async lookup(dirId: bigint, name: Buffer): Promise<GuestDirEntry | undefined> {
    const dir = await this.directory(dirId);
    const units = utf16FromWtf8(name);
    const found = (await this.index(dir.cluster)).find(name, units ? foldUnits(units) : undefined);
    return found && { name: found.name, id: found.id, type: found.isDir ? 'dir' : 'file' };
  }

  async *readdir(dirId: bigint): AsyncIterable<GuestDirEntry> {
    const dir = await this.directory(dirId);
    for await (const item of scanDirectory(this.blocks.blocks(dir.location), dir.cluster, this.geometry.fatType)) {
      yield { name: item.name, id: item.id, type: item.isDir ? 'dir' : 'file' };
    }
  }

  async read(id: bigint, offset: number, length: number): Promise<Buffer> {
    checkRange(offset, length);
    const { entry, runs } = await this.file(id);
    const end = Math.min(entry.size, offset + length);
    if (offset >= end) return Buffer.alloc(0);
    const out = Buffer.allocUnsafe(end - offset);
    const what = `the data of ${this.describe(entry, id)}`;
    for (const piece of this.pieces(runs, offset, end)) {
      await readVolumeInto(
        this.volume,
        piece.volumeOffset,
        out.subarray(piece.offset - offset, piece.offset - offset + piece.length),
        what,
        this.name,
      );
    }
    return out;
  }

  async readlink(id: bigint): Promise<Buffer> {
    await this.entryAt(id);
    throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: node ${id} is not a symbolic link (FAT has none)`, {
      volume: this.name,
      id: String(id),
    });
  }

  async extents(id: bigint, offset: number, length: number): Promise<GuestFileExtent[]> {
    checkRange(offset, length);
    const { entry, runs } = await this.file(id);
    const end = Math.min(entry.size, offset + length);
    const extents: GuestFileExtent[] = [];
    for (const piece of this.pieces(runs, offset, end)) {
      // FAT has no holes: every allocated cluster is data, even when it holds zeros.
      extents.push({
        offset: piece.offset,
        length: piece.length,
        kind: 'data',
        volumeRanges: [{ offset: piece.volumeOffset, length: piece.length }],
      });
    }
    return extents;
  }

  /** The contiguous pieces of file bytes [from, end) on the volume: one per cluster run. */
  private *pieces(runs: ClusterRuns, from: number, end: number): Generator<{ offset: number; length: number; volumeOffset: number }> {
    const size = this.geometry.clusterSize;
    for (let position = from, r = from < end ? runs.runAt(Math.floor(from / size)) : runs.runCount; position < end; r++) {
      const runStart = (runs.firstIndex[r] ?? 0) * size;
      const runEnd = runStart + (runs.counts[r] ?? 0) * size;
      const length = Math.min(end, runEnd) - position;
      yield { offset: position, length, volumeOffset: clusterOffset(this.geometry, runs.starts[r] ?? 0) + (position - runStart) };
      position += length;
    }
  }

  /** A regular file's entry and its whole cluster chain, checked against its size. */
  private async file(id: bigint): Promise<{ entry: ShortEntry; runs: ClusterRuns }> {
    const live = await this.entryAt(id);
    const owner = this.describe(live.entry, id);
    if (live.isDir)
      throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: ${owner} is a directory`, { volume: this.name, id: String(id) });
    const { entry } = live;
    const needed = Math.ceil(entry.size / this.geometry.clusterSize);
    // An empty file's content is known without its chain; a cluster it still names is harmless.
    if (needed === 0) return { entry, runs: EMPTY_RUNS };
    if (entry.firstCluster === 0) throw this.fat.damaged(owner, `${entry.size} bytes but no first cluster`, { id: String(id) });
    const runs = await this.chains.get(`f${id}`, async () => {
      const chain = await walkChain(
        this.fat,
        entry.firstCluster,
        needed,
        owner,
        `longer than its size of ${entry.size} bytes needs, or a loop`,
      );
      if (chain.clusters < needed) {
        throw this.fat.damaged(
          owner,
          `cluster chain ends after ${chain.clusters} clusters, but its size of ${entry.size} bytes needs ${needed}`,
          {
            id: String(id),
          },
        );
      }
      return chain;
    });
    return { entry, runs };
  }

  private directoryChain(cluster: number, owner: string): Promise<ClusterRuns> {
    return this.chains.get(`d${cluster}`, () =>
      walkChain(this.fat, cluster, this.maxDirClusters, owner, `more than the ${MAX_DIR_ENTRIES} entries a directory may hold, or a loop`),
    );
  }

  private async rootDirectory(): Promise<OpenDirectory> {
    const g = this.geometry;
    if (g.fatType !== 32)
      return { cluster: 0, location: { region: { offset: g.rootDirOffset, length: g.rootDirLength } }, length: g.rootDirLength };
    const runs = await this.directoryChain(g.rootCluster, 'the root directory');
    return { cluster: 0, location: { runs }, length: runs.clusters * g.clusterSize };
  }

  /**
   * A directory ready to list. A subdirectory must be entered from the directory its '..' entry
   * names, through the first entry there that names its cluster: FAT keeps that back link, and
   * insisting on it means every directory cluster is reached through exactly one node id, so a walk
   * of a volume whose entries point back at ancestors or cross-link directories ends (with an error
   * on the offending directory) instead of going round forever.
   */
  private directory(id: bigint): Promise<OpenDirectory> {
    return this.directories.get(id, async () => {
      if (id === ROOT_ID) return this.rootDirectory();
      const live = await this.entryAt(id);
      const owner = this.describe(live.entry, id);
      if (!live.isDir)
        throw new CairnError('ERR_INVALID_ARGUMENT', `${this.name}: ${owner} is not a directory`, { volume: this.name, id: String(id) });
      const cluster = live.entry.firstCluster;
      if (cluster === 0 || (this.geometry.fatType === 32 && cluster === this.geometry.rootCluster)) {
        throw this.fat.damaged(owner, 'the directory entry names the root directory as its contents', { id: String(id) });
      }
      const runs = await this.directoryChain(cluster, owner);
      const head = await this.blocks.covering(clusterOffset(this.geometry, cluster), 2 * DIR_ENTRY_SIZE);
      const dotdot = head.subarray(DIR_ENTRY_SIZE);
      if (entryKind(head) !== 'dot' || !isDotDot(dotdot))
        throw this.fat.damaged(owner, "the directory does not start with '.' and '..'", { id: String(id) });
      let parent = firstClusterOf(dotdot, this.geometry.fatType);
      if (this.geometry.fatType === 32 && parent === this.geometry.rootCluster) parent = 0;
      if (parent !== live.parentCluster) {
        throw this.fat.damaged(
          owner,
          `its '..' names directory cluster ${parent}, but its entry is in directory cluster ${live.parentCluster}`,
          {
            id: String(id),
          },
        );
      }
      const canonical = (await this.index(parent)).directoryEntryOf(cluster);
      if (canonical !== id) {
        throw this.fat.damaged(owner, `directory cluster ${cluster} is cross-linked: an earlier entry (node ${canonical}) names it too`, {
          id: String(id),
        });
      }
      return { cluster, location: { runs }, length: runs.clusters * this.geometry.clusterSize };
    });
  }

  /** The lookup index of the directory whose first cluster is `cluster` (0: the root). */
  private index(cluster: number): Promise<DirIndex> {
    return this.indexes.get(cluster, async () => {
      const location =
        cluster === 0
          ? (await this.rootDirectory()).location
          : { runs: await this.directoryChain(cluster, `directory cluster ${cluster}`) };
      const index = new DirIndex();
      for await (const item of scanDirectory(this.blocks.blocks(location), cluster, this.geometry.fatType)) index.add(item);
      return index;
    });
  }

  /** The live short entry a node id names; ERR_NOT_FOUND for an id that names none. */
  private async entryAt(id: bigint): Promise<LiveEntry> {
    const decoded = decodeNodeId(id);
    const g = this.geometry;
    const notFound = (): CairnError =>
      new CairnError('ERR_NOT_FOUND', `${this.name}: no FAT node ${id}`, { volume: this.name, id: String(id) });
    if (!decoded) throw notFound();
    const { parentCluster, entryOffset } = decoded;
    const inRoot = parentCluster === 0 && g.fatType !== 32;
    const valid = inRoot
      ? entryOffset >= g.rootDirOffset &&
        entryOffset < g.rootDirOffset + g.rootDirLength &&
        (entryOffset - g.rootDirOffset) % DIR_ENTRY_SIZE === 0
      : (parentCluster === 0 || this.fat.inRange(parentCluster)) &&
        entryOffset >= g.dataOffset &&
        (entryOffset - g.dataOffset) % DIR_ENTRY_SIZE === 0 &&
        FAT_TYPE_LIMITS.firstDataCluster + Math.floor((entryOffset - g.dataOffset) / g.clusterSize) <= g.maxCluster;
    if (!valid) throw notFound();
    const slot = await this.blocks.covering(entryOffset, DIR_ENTRY_SIZE);
    const kind = entryKind(slot);
    if (kind !== 'file' && kind !== 'dir') throw notFound();
    return { entry: parseShortEntry(slot, g.fatType), isDir: kind === 'dir', parentCluster };
  }

  /** How error messages name a node: its 8.3 name (the long name lies in other entries) and id. */
  private describe(entry: ShortEntry, id: bigint): string {
    return `"${shortNameOf(entry.nameField, entry.ntRes)}" (node ${id})`;
  }

  /**
   * The volume label: the root directory's volume-label entry, which Windows and mtools write and
   * show, else BS_VolLab. A root directory too damaged to scan leaves just the boot sector's label
   * (the damage is reported when the root is listed).
   */
  private async readLabel(): Promise<string | undefined> {
    const trimmed = (bytes: Buffer): string | undefined => decodeCp437(bytes).replace(/ +$/, '') || undefined;
    try {
      const root = await this.rootDirectory();
      for await (const block of this.blocks.blocks(root.location)) {
        for (let at = 0; at + DIR_ENTRY_SIZE <= block.bytes.length; at += DIR_ENTRY_SIZE) {
          const slot = block.bytes.subarray(at, at + DIR_ENTRY_SIZE);
          const kind = entryKind(slot);
          if (kind === 'end') return this.geometry.bootLabel && trimmed(this.geometry.bootLabel);
          if (kind === 'label')
            return trimmed(slot.subarray(DIR_ENTRY.DIR_Name.offset, DIR_ENTRY.DIR_Name.offset + DIR_ENTRY.DIR_Name.size));
        }
      }
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
    }
    return this.geometry.bootLabel && trimmed(this.geometry.bootLabel);
  }
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `invalid file range ${offset}+${length}`, { offset, length });
  }
}
