import { promisify } from 'node:util';
import { constants as zlibConstants, inflateRaw } from 'node:zlib';
import { CairnError } from '../core/errors.js';
import {
  l1EntryOffset,
  l2Entry,
  parseQcow2Extensions,
  parseQcow2Header,
  qcow2BackingName,
  QCOW2,
  type Qcow2Header,
  type Qcow2Mapping,
} from '../formats/qcow2-layout.js';
import { outlineZstdFrame } from '../util/zstd-frame.js';
import { zstdDecompress } from '../util/zstd.js';
import type { DiskOrigin } from '../store/manifest.js';
import { ImageFile, MAX_IMAGE_SIZE } from './image-file.js';
import type { ChainContext, ImageLayer, LayerPiece } from './image-layer.js';

const inflateRawAsync = promisify(inflateRaw);

interface CompressedCluster {
  hostOffset: number;
  compressedLength: number;
}

/** A data piece over consecutive compressed clusters; `runStart` is the disk offset of its first cluster. */
type CompressedRunPiece = Extract<LayerPiece, { kind: 'data' }> & { runStart: number; clusters: CompressedCluster[] };

/** L1 entries loaded at a time (32 KiB): the L1 table is never held whole. */
const L1_WINDOW_ENTRIES = 4096;
/** L2 tables kept (at most 4 clusters): the walk is sequential, so the current one is enough. */
const L2_CACHE_TABLES = 4;

/** One qcow2 image file: its header, a window of its L1 table and the last few L2 tables. */
export class Qcow2Layer implements ImageLayer {
  private l1Window: { first: number; table: Buffer } | undefined;
  private readonly l2Cache = new Map<number, Buffer>();
  private lastCompressed: { hostOffset: number; data: Promise<Buffer> } | undefined;
  private parent: Promise<ImageLayer> | undefined;
  private parentLayer: ImageLayer | undefined;

  private constructor(
    private readonly file: ImageFile,
    readonly header: Qcow2Header,
    readonly backingFile: string | undefined,
    readonly backingFormat: string | undefined,
    private readonly chain: ChainContext,
  ) {}

  static async open(file: ImageFile, chain: ChainContext): Promise<Qcow2Layer> {
    const head = await file.read(0, Math.min(file.size, 4096), 'qcow2 header');
    let header = parseQcow2Header(head, file.size);
    // Extensions and the backing file name live anywhere in the first cluster.
    const first =
      header.clusterSize > head.length && file.size > head.length
        ? await file.read(0, Math.min(file.size, header.clusterSize), 'qcow2 header cluster')
        : head;
    header = parseQcow2Header(first, file.size);
    if (header.size > MAX_IMAGE_SIZE) {
      throw new CairnError('ERR_UNSUPPORTED', `qcow2: virtual size ${header.size} exceeds Cairn's limit of 64 TiB`, { file: file.path });
    }
    const extensions = parseQcow2Extensions(first, header);
    return new Qcow2Layer(file, header, qcow2BackingName(first, header), extensions.backingFormat, chain);
  }

  get path(): string {
    return this.file.path;
  }

  get size(): number {
    return this.header.size;
  }

  get hasParent(): boolean {
    return this.backingFile !== undefined;
  }

  get bytesRead(): number {
    return this.file.bytesRead + (this.parentLayer?.bytesRead ?? 0);
  }

  get description(): string {
    const h = this.header;
    const features = [
      `${h.clusterSize / 1024} KiB clusters`,
      ...(h.extendedL2 ? ['extended L2'] : []),
      ...(h.compression !== 'zlib' ? [`${h.compression} compression`] : []),
      ...(h.corrupt ? ['marked corrupt'] : []),
    ];
    return `qcow2 v${h.version} (${features.join(', ')}) ${this.file.path}`;
  }

  get origin(): DiskOrigin {
    return { format: 'qcow2', description: this.description, ...(this.backingFile !== undefined ? { parent: this.backingFile } : {}) };
  }

  openParent(): Promise<ImageLayer> {
    if (this.backingFile === undefined) throw new Error('qcow2 layer without a backing file asked for its parent');
    this.parent ??= this.chain.openBacking(this.file.path, this.backingFile, this.backingFormat, this.chain).then((layer) => {
      this.parentLayer = layer;
      return layer;
    });
    return this.parent;
  }

  private async l1Entry(index: number): Promise<number> {
    if (!this.l1Window || index < this.l1Window.first || index >= this.l1Window.first + L1_WINDOW_ENTRIES) {
      const first = index - (index % L1_WINDOW_ENTRIES);
      const count = Math.min(L1_WINDOW_ENTRIES, this.header.l1Size - first);
      const table = await this.file.read(this.header.l1TableOffset + first * 8, count * 8, 'qcow2 L1 table');
      this.l1Window = { first, table };
    }
    return l1EntryOffset(this.l1Window.table, index - this.l1Window.first, this.header.clusterSize);
  }

  private async l2Table(offset: number): Promise<Buffer> {
    const cached = this.l2Cache.get(offset);
    if (cached) return cached;
    const table = await this.file.read(offset, this.header.clusterSize, 'qcow2 L2 table');
    if (this.l2Cache.size >= L2_CACHE_TABLES) this.l2Cache.delete(this.l2Cache.keys().next().value!);
    this.l2Cache.set(offset, table);
    return table;
  }

  async map(offset: number, length: number): Promise<LayerPiece[]> {
    const { clusterSize, l2Entries } = this.header;
    const pieces: LayerPiece[] = [];
    const end = offset + length;
    const unallocated = this.backingFile !== undefined ? 'parent' : 'zero';
    let cluster = Math.floor(offset / clusterSize);
    while (cluster * clusterSize < end) {
      const l1Index = Math.floor(cluster / l2Entries);
      const l2Offset = await this.l1Entry(l1Index);
      const tableEnd = (l1Index + 1) * l2Entries;
      if (l2Offset === 0) {
        this.add(pieces, unallocated, cluster * clusterSize, tableEnd * clusterSize, offset, end);
        cluster = tableEnd;
        continue;
      }
      const table = await this.l2Table(l2Offset);
      for (; cluster < tableEnd && cluster * clusterSize < end; cluster++) {
        this.addMapping(
          pieces,
          l2Entry(table, cluster - l1Index * l2Entries, this.header),
          cluster * clusterSize,
          offset,
          end,
          unallocated,
        );
      }
    }
    return pieces;
  }

  private addMapping(
    pieces: LayerPiece[],
    mapping: Qcow2Mapping,
    at: number,
    from: number,
    to: number,
    unallocated: 'parent' | 'zero',
  ): void {
    const { clusterSize } = this.header;
    switch (mapping.kind) {
      case 'unallocated':
        return this.add(pieces, unallocated, at, at + clusterSize, from, to);
      case 'zero':
        return this.add(pieces, 'zero', at, at + clusterSize, from, to);
      case 'data':
        return this.addData(pieces, at, at + clusterSize, mapping.hostOffset, from, to);
      case 'compressed':
        return this.addCompressed(pieces, at, mapping.hostOffset, mapping.compressedLength, from, to);
      case 'subclusters': {
        const sub = clusterSize / QCOW2.SUBCLUSTERS;
        for (let n = 0; n < QCOW2.SUBCLUSTERS; n++) {
          const start = at + n * sub;
          if ((mapping.allocated >>> n) & 1) this.addData(pieces, start, start + sub, mapping.hostOffset + n * sub, from, to);
          else this.add(pieces, (mapping.zero >>> n) & 1 ? 'zero' : unallocated, start, start + sub, from, to);
        }
        return;
      }
    }
  }

  /** Appends a zero or parent range clipped to [from, to), merged with the previous piece when alike. */
  private add(pieces: LayerPiece[], kind: 'zero' | 'parent', start: number, end: number, from: number, to: number): void {
    const s = Math.max(start, from);
    const e = Math.min(end, to);
    if (e <= s) return;
    const last = pieces[pieces.length - 1];
    if (last && last.kind === kind && last.offset + last.length === s) last.length += e - s;
    else pieces.push({ kind, offset: s, length: e - s });
  }

  /** Appends stored data; a run of clusters stored back to back in the file becomes one read. */
  private addData(pieces: LayerPiece[], start: number, end: number, hostOffset: number, from: number, to: number): void {
    const s = Math.max(start, from);
    const e = Math.min(end, to);
    if (e <= s) return;
    const host = hostOffset + (s - start);
    // Checked now, so a table pointing past the end fails before any data is read.
    this.file.checkRange(host, e - s, 'qcow2 data cluster');
    const last = pieces[pieces.length - 1] as (LayerPiece & { host?: number }) | undefined;
    if (last && last.kind === 'data' && last.host !== undefined && last.offset + last.length === s && last.host + last.length === host) {
      last.length += e - s;
      return;
    }
    const piece = {
      kind: 'data' as const,
      offset: s,
      length: e - s,
      host,
      read: (target: Buffer, targetOffset: number, skip: number, count: number) =>
        this.file.readInto(target, targetOffset, host + skip, count, 'qcow2 data cluster'),
    };
    pieces.push(piece);
  }

  /**
   * Appends a compressed cluster; clusters that follow one another on the disk and in the file
   * (qemu packs them back to back) join one piece, read with one pread and, for zstd, decoded in one
   * call (a buffer of whole frames decodes as their concatenation).
   */
  private addCompressed(pieces: LayerPiece[], start: number, hostOffset: number, compressedLength: number, from: number, to: number): void {
    const { clusterSize } = this.header;
    const s = Math.max(start, from);
    const e = Math.min(start + clusterSize, to);
    if (e <= s) return;
    if (hostOffset >= this.file.size) this.file.checkRange(hostOffset, compressedLength, 'qcow2 compressed cluster');
    const last = pieces[pieces.length - 1] as CompressedRunPiece | undefined;
    const previous = last?.clusters?.[last.clusters.length - 1];
    if (
      last?.clusters &&
      previous &&
      s === start &&
      last.offset + last.length === start &&
      last.runStart + last.clusters.length * clusterSize === start &&
      hostOffset >= previous.hostOffset &&
      hostOffset <= previous.hostOffset + previous.compressedLength
    ) {
      last.clusters.push({ hostOffset, compressedLength });
      last.length += e - s;
      return;
    }
    const piece: CompressedRunPiece = {
      kind: 'data',
      offset: s,
      length: e - s,
      runStart: start,
      clusters: [{ hostOffset, compressedLength }],
      read: async (target, targetOffset, skip, count) => {
        (await this.loadCompressed(piece, skip, count)).copy(target, targetOffset);
      },
      load: (skip, count) => this.loadCompressed(piece, skip, count),
    };
    pieces.push(piece);
  }

  /** Bytes [skip, skip + count) of a run of compressed clusters: a view of the decoded clusters. */
  private async loadCompressed(piece: CompressedRunPiece, skip: number, count: number): Promise<Buffer> {
    const { clusterSize } = this.header;
    const from = piece.offset + skip;
    const first = Math.floor((from - piece.runStart) / clusterSize);
    const last = Math.ceil((from + count - piece.runStart) / clusterSize);
    const clusters = piece.clusters.slice(first, last);
    const plain = clusters.length === 1 ? await this.decompressed(clusters[0]!) : await this.decodeRun(clusters);
    const at = from - (piece.runStart + first * clusterSize);
    return plain.subarray(at, at + count);
  }

  /** One compressed cluster decoded; the last one is kept, as a 2 MiB cluster may feed two chunks. */
  private decompressed(cluster: CompressedCluster): Promise<Buffer> {
    if (this.lastCompressed?.hostOffset === cluster.hostOffset) return this.lastCompressed.data;
    const data = this.readCompressedBytes([cluster]).then((input) => this.decodeOne(input, 0, cluster));
    this.lastCompressed = { hostOffset: cluster.hostOffset, data };
    return data;
  }

  /** The file bytes of consecutive compressed clusters, in one read (the last sectors may end past the end of the file). */
  private readCompressedBytes(clusters: CompressedCluster[]): Promise<Buffer> {
    const start = clusters[0]!.hostOffset;
    const end = Math.min(this.file.size, Math.max(...clusters.map((c) => c.hostOffset + c.compressedLength)));
    return this.file.read(start, end - start, 'qcow2 compressed cluster');
  }

  private async decodeRun(clusters: CompressedCluster[]): Promise<Buffer> {
    const { clusterSize } = this.header;
    const input = await this.readCompressedBytes(clusters);
    const base = clusters[0]!.hostOffset;
    if (this.header.compression === 'zstd') {
      // Frames back to back decode in one call; checked one by one first, so none can make the
      // decoder allocate more than its cluster.
      let end = 0;
      let adjacent = true;
      for (const cluster of clusters) {
        const at = cluster.hostOffset - base;
        if (at !== end) adjacent = false;
        end = at + this.zstdFrameLength(input.subarray(at), cluster);
      }
      if (adjacent) {
        const plain = await zstdDecompress(input.subarray(0, end), clusters.length * clusterSize, { frames: 'many' }).catch(
          (err: unknown) => {
            throw this.damaged(clusters[0]!, (err as Error).message, err);
          },
        );
        if (plain.length !== clusters.length * clusterSize) throw this.damaged(clusters[0]!, `a run yields ${plain.length} bytes`);
        return plain;
      }
    }
    const parts = await Promise.all(clusters.map((cluster) => this.decodeOne(input, cluster.hostOffset - base, cluster)));
    return Buffer.concat(parts, clusters.length * clusterSize);
  }

  private damaged(cluster: CompressedCluster, reason: string, cause?: unknown): CairnError {
    return new CairnError(
      'ERR_FORMAT_INVALID',
      `qcow2: compressed cluster at ${cluster.hostOffset} in ${this.file.path} does not decode: ${reason}`,
      { offset: cluster.hostOffset },
      { cause },
    );
  }

  /** Length of the zstd frame at the start of `input`, after checking that it declares exactly one cluster. */
  private zstdFrameLength(input: Buffer, cluster: CompressedCluster): number {
    const frame = outlineZstdFrame(input.subarray(0, cluster.compressedLength));
    if ('invalid' in frame) throw this.damaged(cluster, frame.invalid);
    // Checked before decoding, so a frame cannot make the decoder allocate more than a cluster.
    if (frame.contentSize !== this.header.clusterSize) {
      throw this.damaged(cluster, `frame declares ${frame.contentSize ?? 'no'} content size, not ${this.header.clusterSize}`);
    }
    return frame.frameLength;
  }

  /** Decodes the cluster whose bytes start at `at` in `input`. */
  private async decodeOne(input: Buffer, at: number, cluster: CompressedCluster): Promise<Buffer> {
    const { clusterSize } = this.header;
    const bytes = input.subarray(at, at + cluster.compressedLength);
    let plain: Buffer;
    if (this.header.compression === 'zstd') {
      plain = await zstdDecompress(bytes.subarray(0, this.zstdFrameLength(bytes, cluster)), clusterSize).catch((err: unknown) => {
        throw this.damaged(cluster, (err as Error).message, err);
      });
    } else {
      // Raw deflate; the input may end mid-stream or carry the next cluster's bytes after it.
      plain = await inflateRawAsync(bytes, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: clusterSize }).catch(
        (err: unknown) => {
          throw this.damaged(cluster, (err as Error).message, err);
        },
      );
    }
    if (plain.length !== clusterSize) throw this.damaged(cluster, `it yields ${plain.length} bytes, not ${clusterSize}`);
    return plain;
  }

  async close(): Promise<void> {
    await this.file.close();
    if (this.parent) await (await this.parent.catch(() => undefined))?.close();
  }
}
