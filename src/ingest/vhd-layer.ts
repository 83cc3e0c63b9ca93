import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { CairnError } from '../core/errors.js';
import {
  decodeLocator,
  isVhdFooter,
  parseVhdFooter,
  parseVhdHeader,
  sectorMarked,
  VHD,
  VHD_PLATFORM,
  type VhdFooter,
  type VhdHeader,
} from '../formats/vhd-layout.js';
import type { DiskOrigin } from '../store/manifest.js';
import { MAX_IMAGE_SIZE, type ImageFile } from './image-file.js';
import type { ChainContext, ImageLayer, LayerPiece } from './image-layer.js';

/** BAT entries loaded at a time (16 KiB): the table is never held whole. */
const BAT_WINDOW_ENTRIES = 4096;

/** A parent locator as the point records it, its path decoded. */
interface ParentLocator {
  platform: string;
  platformCode: number;
  path: string;
}

/** One VHD file: fixed (data then footer) or dynamic/differencing (header, BAT, blocks with sector bitmaps). */
export class VhdLayer implements ImageLayer {
  private batWindow: { first: number; table: Buffer } | undefined;
  private lastBitmap: { block: number; bitmap: Buffer } | undefined;
  private parent: Promise<ImageLayer> | undefined;
  private parentLayer: ImageLayer | undefined;

  private constructor(
    private readonly file: ImageFile,
    readonly footer: VhdFooter,
    readonly header: VhdHeader | undefined,
    readonly locators: ParentLocator[],
    private readonly chain: ChainContext,
  ) {}

  static async open(file: ImageFile, chain: ChainContext): Promise<VhdLayer> {
    if (file.size < VHD.FOOTER_SIZE) throw new CairnError('ERR_FORMAT_INVALID', `VHD: ${file.path} is shorter than a footer`);
    // Dynamic and differencing disks carry a copy of the footer at 0, which qemu reads first; a
    // fixed disk has it only at the end.
    const head = await file.read(0, VHD.FOOTER_SIZE, 'VHD footer copy');
    const footer = parseVhdFooter(isVhdFooter(head) ? head : await file.read(file.size - VHD.FOOTER_SIZE, VHD.FOOTER_SIZE, 'VHD footer'));
    if (footer.size > MAX_IMAGE_SIZE) throw new CairnError('ERR_UNSUPPORTED', `VHD: virtual size ${footer.size} exceeds Cairn's limit`);
    if (footer.diskType === 'fixed') {
      file.checkRange(0, footer.size + VHD.FOOTER_SIZE, 'VHD fixed disk data and footer');
      return new VhdLayer(file, footer, undefined, [], chain);
    }
    const header = parseVhdHeader(await file.read(footer.dataOffset!, VHD.HEADER_SIZE, 'VHD dynamic header'), footer.size, file.size);
    const locators: ParentLocator[] = [];
    if (footer.diskType === 'differencing') {
      for (const locator of header.locators) {
        const data = await file.read(locator.dataOffset, locator.dataLength, 'VHD parent locator');
        locators.push({ platform: locator.platform, platformCode: locator.platformCode, path: decodeLocator(locator.platformCode, data) });
      }
    }
    return new VhdLayer(file, footer, header, locators, chain);
  }

  get path(): string {
    return this.file.path;
  }

  get size(): number {
    return this.footer.size;
  }

  get hasParent(): boolean {
    return this.footer.diskType === 'differencing';
  }

  get bytesRead(): number {
    return this.file.bytesRead + (this.parentLayer?.bytesRead ?? 0);
  }

  get description(): string {
    const block = this.header ? `, ${this.header.blockSize / 1024} KiB blocks` : '';
    return `VHD ${this.footer.diskType} (creator '${this.footer.creatorApplication.trimEnd()}'${block}) ${this.file.path}`;
  }

  get origin(): DiskOrigin {
    return {
      format: 'vhd',
      description: this.description,
      ...(this.hasParent ? { parent: `${this.header!.parentName} {${this.header!.parentUniqueId}}` } : {}),
      ...(this.locators.length > 0 ? { parentLocators: this.locators.map((l) => `${l.platform} ${l.path}`) } : {}),
      id: this.footer.uniqueId,
    };
  }

  /**
   * A differencing disk applies onto a base point made from its parent: when the base recorded a
   * VHD's id, it must be the parent id this disk names (child.parentUuid == parent.footer.uuid).
   */
  checkBase(base: { point: string; origin?: DiskOrigin } | undefined): void {
    if (!this.hasParent || base?.origin?.format !== 'vhd' || base.origin.id === undefined) return;
    if (base.origin.id !== this.header!.parentUniqueId) {
      throw new CairnError(
        'ERR_INVALID_ARGUMENT',
        `${this.file.path} is a differencing VHD of parent ${this.header!.parentUniqueId}, but base point ${base.point} was made from VHD ${base.origin.id}: refusing to apply it onto the wrong base`,
        { file: this.file.path, point: base.point },
      );
    }
  }

  /** Paths the parent may be at, most specific first: the locators, then the parent's unicode name. */
  private parentCandidates(): string[] {
    const base = dirname(this.file.path);
    const candidates: string[] = [];
    const add = (path: string) => {
      const unix = path.replace(/\\/g, '/');
      candidates.push(isAbsolute(unix) ? unix : resolve(base, unix));
    };
    for (const locator of this.locators) {
      if (locator.platformCode === VHD_PLATFORM.W2ru || locator.platformCode === VHD_PLATFORM.W2ku) add(locator.path);
      if (locator.platformCode === VHD_PLATFORM.MacX) add(decodeURIComponent(locator.path.replace(/^file:\/\/(localhost)?/, '')));
    }
    if (this.header!.parentName) add(this.header!.parentName);
    return candidates;
  }

  openParent(): Promise<ImageLayer> {
    this.parent ??= (async () => {
      for (const candidate of this.parentCandidates()) {
        if (
          !(await stat(candidate).then(
            (s) => s.isFile(),
            () => false,
          ))
        )
          continue;
        const layer = await this.chain.openBacking(this.file.path, candidate, 'vpc', this.chain);
        if (!(layer instanceof VhdLayer) || layer.footer.uniqueId !== this.header!.parentUniqueId) {
          const found = layer instanceof VhdLayer ? layer.footer.uniqueId : 'not a VHD';
          await layer.close();
          throw new CairnError(
            'ERR_FORMAT_INVALID',
            `VHD: ${candidate} is not the parent of ${this.file.path} (its id is ${found}, the child names ${this.header!.parentUniqueId})`,
            { file: this.file.path },
          );
        }
        this.parentLayer = layer;
        return layer;
      }
      throw new CairnError(
        'ERR_SOURCE',
        `VHD: the parent of ${this.file.path} ('${this.header!.parentName}') is not found; make it available to read the whole chain, or give --base latest to take the unmarked sectors from the latest point`,
        { file: this.file.path },
      );
    })();
    return this.parent;
  }

  private async batEntry(block: number): Promise<number> {
    const header = this.header!;
    if (!this.batWindow || block < this.batWindow.first || block >= this.batWindow.first + BAT_WINDOW_ENTRIES) {
      const first = block - (block % BAT_WINDOW_ENTRIES);
      const count = Math.min(BAT_WINDOW_ENTRIES, header.maxTableEntries - first);
      this.batWindow = { first, table: await this.file.read(header.tableOffset + first * 4, count * 4, 'VHD block allocation table') };
    }
    return this.batWindow.table.readUInt32BE((block - this.batWindow.first) * 4);
  }

  private async bitmap(block: number, blockOffset: number): Promise<Buffer> {
    if (this.lastBitmap?.block === block) return this.lastBitmap.bitmap;
    const bitmap = await this.file.read(blockOffset, this.header!.bitmapSize, 'VHD sector bitmap');
    this.lastBitmap = { block, bitmap };
    return bitmap;
  }

  async map(offset: number, length: number): Promise<LayerPiece[]> {
    const end = offset + length;
    const pieces: LayerPiece[] = [];
    if (!this.header) {
      this.addData(pieces, offset, end, offset);
      return pieces;
    }
    const { blockSize, bitmapSize } = this.header;
    const absent = this.hasParent ? 'parent' : 'zero';
    for (let block = Math.floor(offset / blockSize); block * blockSize < end; block++) {
      const start = Math.max(offset, block * blockSize);
      const stop = Math.min(end, (block + 1) * blockSize);
      const sector = await this.batEntry(block);
      if (sector === VHD.UNUSED_BLOCK) {
        this.add(pieces, absent, start, stop);
        continue;
      }
      const blockOffset = sector * VHD.SECTOR;
      const dataOffset = blockOffset + bitmapSize;
      this.file.checkRange(dataOffset, Math.min(blockSize, this.footer.size - block * blockSize), 'VHD data block');
      const bitmap = await this.bitmap(block, blockOffset);
      // Sector runs: marked sectors are stored here; unmarked ones read as zeros (dynamic) or come from the parent.
      for (let at = start; at < stop;) {
        const s = Math.floor((at - block * blockSize) / VHD.SECTOR);
        const marked = sectorMarked(bitmap, s);
        let next = Math.min(stop, block * blockSize + (s + 1) * VHD.SECTOR);
        while (next < stop && sectorMarked(bitmap, (next - block * blockSize) / VHD.SECTOR) === marked)
          next = Math.min(stop, next + VHD.SECTOR);
        if (marked) this.addData(pieces, at, next, dataOffset + (at - block * blockSize));
        else this.add(pieces, absent, at, next);
        at = next;
      }
    }
    return pieces;
  }

  private add(pieces: LayerPiece[], kind: 'zero' | 'parent', start: number, end: number): void {
    const last = pieces[pieces.length - 1];
    if (last && last.kind === kind && last.offset + last.length === start) last.length += end - start;
    else pieces.push({ kind, offset: start, length: end - start });
  }

  private addData(pieces: LayerPiece[], start: number, end: number, host: number): void {
    pieces.push({
      kind: 'data',
      offset: start,
      length: end - start,
      read: (target, targetOffset, skip, count) => this.file.readInto(target, targetOffset, host + skip, count, 'VHD data'),
    });
  }

  async close(): Promise<void> {
    await this.file.close();
    if (this.parent) await (await this.parent.catch(() => undefined))?.close();
  }
}
