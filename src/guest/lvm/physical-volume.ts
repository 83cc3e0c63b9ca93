import type { BlockReader } from '../../core/block-reader.js';
import { CairnError, isCairnError } from '../../core/errors.js';
import { LABEL, MDA_HEADER } from './layout.js';
import { checkMetadataText, parseMdaHeader } from './mda-header.js';
import { parsePvLabel, type DiskArea } from './pv-label.js';
import { parseVgMetadata, type VgMetadata } from './vg-metadata.js';

export type MetadataAreaState = 'text' | 'empty' | 'ignored' | 'damaged';

export interface MetadataAreaInfo {
  /** Byte offset of the area on the device and its size as the label lists it. */
  readonly offset: number;
  readonly size: number;
  /** `empty`: an orphan PV's area; `ignored`: switched off with `pvchange --metadataignore`. */
  readonly state: MetadataAreaState;
  /** The current text runs past the end of the circular buffer and continues at its start. */
  readonly wrapped?: boolean;
  readonly vgName?: string;
  readonly vgUuid?: string;
  readonly seqno?: number;
}

/** A physical volume found on a device: its label and the VG metadata its areas hold. */
export interface PvInfo {
  readonly uuid: string;
  readonly labelSector: number;
  readonly deviceSize: number;
  readonly dataAreas: readonly DiskArea[];
  readonly metadataAreas: readonly MetadataAreaInfo[];
  /** The distinct metadata copies read from the areas, highest seqno first. */
  readonly metadata: readonly VgMetadata[];
  /** Areas that could not be read (bad checksum, truncated or malformed text…). */
  readonly problems: readonly CairnError[];
}

/**
 * Parsed metadata by text, so that the same copy found in every area of every PV of a VG is parsed
 * once. Holds each distinct text until the scan that owns it ends.
 */
export class MetadataTextCache {
  private readonly byKey = new Map<string, { text: Buffer; result: VgMetadata | CairnError }[]>();

  parse(text: Buffer, checksum: number): VgMetadata | CairnError {
    const key = `${checksum}:${text.length}`;
    const bucket = this.byKey.get(key) ?? [];
    const hit = bucket.find((entry) => entry.text.equals(text));
    if (hit) return hit.result;
    let result: VgMetadata | CairnError;
    try {
      result = parseVgMetadata(text);
    } catch (err) {
      if (!isCairnError(err)) throw err;
      result = err;
    }
    bucket.push({ text, result });
    this.byKey.set(key, bucket);
    return result;
  }
}

/**
 * Reads the LVM label of `reader` (a whole disk or a partition) and the metadata of each of its
 * metadata areas. Undefined when the device carries no LVM label. A damaged label rejects with
 * ERR_FORMAT_INVALID; a damaged metadata area is reported in `problems` and the other areas are
 * still used (as lvm does, which keeps two copies for that reason).
 */
export async function scanPhysicalVolume(reader: BlockReader, cache = new MetadataTextCache()): Promise<PvInfo | undefined> {
  if (reader.size < LABEL.SIZE) return undefined;
  const head = await reader.read(0, Math.min(reader.size, LABEL.SCAN_SECTORS * LABEL.SIZE));
  const label = parsePvLabel(head);
  if (!label) return undefined;
  const metadataAreas: MetadataAreaInfo[] = [];
  const metadata: VgMetadata[] = [];
  const problems: CairnError[] = [];
  for (const area of label.metadataAreas) {
    try {
      const info = await readMetadataArea(reader, area, cache);
      metadataAreas.push(info.area);
      if (info.metadata && !metadata.includes(info.metadata)) metadata.push(info.metadata);
    } catch (err) {
      if (!isCairnError(err)) throw err;
      metadataAreas.push({ offset: area.offset, size: area.size, state: 'damaged' });
      problems.push(err);
    }
  }
  metadata.sort((a, b) => b.seqno - a.seqno);
  return {
    uuid: label.uuid,
    labelSector: label.sector,
    deviceSize: label.deviceSize,
    dataAreas: label.dataAreas,
    metadataAreas,
    metadata,
    problems,
  };
}

async function readMetadataArea(
  reader: BlockReader,
  area: DiskArea,
  cache: MetadataTextCache,
): Promise<{ area: MetadataAreaInfo; metadata?: VgMetadata }> {
  if (area.offset + MDA_HEADER.SIZE > reader.size) {
    throw new CairnError(
      'ERR_FORMAT_INVALID',
      `LVM metadata area at byte ${area.offset} lies past the end of the device (${reader.size} bytes)`,
      {
        structure: 'lvm mda_header',
        offset: area.offset,
      },
    );
  }
  const contents = parseMdaHeader(await reader.read(area.offset, MDA_HEADER.SIZE), area.offset, reader.size);
  if (contents.state !== 'text') return { area: { offset: area.offset, size: area.size, state: contents.state } };
  const pieces = await Promise.all(contents.text.pieces.map((piece) => reader.read(piece.offset, piece.length)));
  const text = checkMetadataText(pieces, contents.text, area.offset);
  const result = cache.parse(text, contents.text.checksum);
  if (result instanceof CairnError) {
    throw new CairnError(
      'ERR_FORMAT_INVALID',
      `LVM metadata area at byte ${area.offset}: ${result.message}`,
      { ...result.context, offset: area.offset },
      { cause: result },
    );
  }
  return {
    area: {
      offset: area.offset,
      size: area.size,
      state: 'text',
      wrapped: contents.wrapped,
      vgName: result.name,
      vgUuid: result.uuid,
      seqno: result.seqno,
    },
    metadata: result,
  };
}
