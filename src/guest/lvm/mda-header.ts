import { CairnError } from '../../core/errors.js';
import { u64leSafe } from '../le-fields.js';
import { LVM_LIMITS, MDA_HEADER, RAW_LOCN } from './layout.js';
import { lvmCrc } from './lvm-crc.js';

/** Where the committed metadata text of one metadata area lies, as absolute device byte ranges. */
export interface MetadataTextLocation {
  /** One piece, or two when the text wraps past the end of the area back to its start + 512. */
  readonly pieces: readonly { readonly offset: number; readonly length: number }[];
  /** Text length, its terminating NUL included. */
  readonly size: number;
  readonly checksum: number;
}

export type MdaContents =
  | { readonly state: 'empty' }
  | { readonly state: 'ignored' }
  | { readonly state: 'text'; readonly text: MetadataTextLocation; readonly wrapped: boolean };

/**
 * Parses the 512-byte mda_header of the metadata area at `areaOffset` and locates its committed text
 * (raw_locn slot 0; slot 1, the precommitted copy, matters only to a writer mid-commit). Checks what
 * lvm's `raw_parse_mda_header` and `_vg_read_raw_area` check: checksum, magic, version, the start the
 * header records, the area size, and that the text lies inside the circular buffer. `deviceSize`
 * bounds the area. Damage is ERR_FORMAT_INVALID naming the area.
 */
export function parseMdaHeader(header: Buffer, areaOffset: number, deviceSize: number): MdaContents {
  const fail = (why: string): never => {
    throw new CairnError('ERR_FORMAT_INVALID', `LVM metadata area at byte ${areaOffset}: ${why}`, {
      structure: 'lvm mda_header',
      offset: areaOffset,
    });
  };
  if (header.length < MDA_HEADER.SIZE) return fail('the header is truncated');
  const stored = header.readUInt32LE(MDA_HEADER.CHECKSUM_OFFSET);
  const computed = lvmCrc(header.subarray(MDA_HEADER.MAGIC_OFFSET, MDA_HEADER.SIZE));
  if (stored !== computed) return fail(`bad header checksum (stored 0x${hex(stored)}, computed 0x${hex(computed)})`);
  const magic = header.toString('latin1', MDA_HEADER.MAGIC_OFFSET, MDA_HEADER.MAGIC_OFFSET + MDA_HEADER.MAGIC.length);
  if (magic !== MDA_HEADER.MAGIC) return fail('bad magic');
  const version = header.readUInt32LE(MDA_HEADER.VERSION_OFFSET);
  if (version !== MDA_HEADER.VERSION) return fail(`unknown version ${version}`);
  const start = u64leSafe(header, MDA_HEADER.START_OFFSET, 'mda_header.start');
  if (start !== areaOffset) return fail(`the header says it starts at byte ${start}`);
  const areaSize = u64leSafe(header, MDA_HEADER.AREA_SIZE_OFFSET, 'mda_header.size');
  if (areaSize < MDA_HEADER.SIZE) return fail(`area size ${areaSize} is smaller than its header`);
  if (areaOffset + areaSize > deviceSize) return fail(`area size ${areaSize} runs past the end of the device (${deviceSize} bytes)`);

  const slot = MDA_HEADER.RAW_LOCNS_OFFSET;
  const offset = u64leSafe(header, slot + RAW_LOCN.OFFSET, 'raw_locn.offset');
  const size = u64leSafe(header, slot + RAW_LOCN.SIZE, 'raw_locn.size');
  const checksum = header.readUInt32LE(slot + RAW_LOCN.CHECKSUM);
  const flags = header.readUInt32LE(slot + RAW_LOCN.FLAGS);
  if (flags & RAW_LOCN.FLAG_IGNORED) return { state: 'ignored' };
  if (offset === 0 && size === 0) return { state: 'empty' };
  // The text lives in [512, areaSize): it may neither overlap the header nor be longer than the buffer.
  if (offset < MDA_HEADER.SIZE || offset >= areaSize)
    return fail(`metadata text offset ${offset} is outside the buffer [512, ${areaSize})`);
  if (size === 0 || size > areaSize - MDA_HEADER.SIZE) return fail(`metadata text size ${size} does not fit the buffer`);
  if (size > LVM_LIMITS.MAX_METADATA_TEXT) {
    return fail(`metadata text of ${size} bytes is larger than Cairn reads (${LVM_LIMITS.MAX_METADATA_TEXT})`);
  }
  const firstLength = Math.min(size, areaSize - offset);
  const pieces = [{ offset: areaOffset + offset, length: firstLength }];
  if (firstLength < size) pieces.push({ offset: areaOffset + MDA_HEADER.SIZE, length: size - firstLength });
  return { state: 'text', text: { pieces, size, checksum }, wrapped: pieces.length > 1 };
}

/** Checks the text's CRC (chained over both pieces when it wraps) and returns the joined bytes. */
export function checkMetadataText(pieces: readonly Buffer[], location: MetadataTextLocation, areaOffset: number): Buffer {
  let crc: number | undefined;
  for (const piece of pieces) crc = lvmCrc(piece, crc);
  if (crc !== location.checksum) {
    throw new CairnError(
      'ERR_FORMAT_INVALID',
      `LVM metadata area at byte ${areaOffset}: the metadata text has a bad checksum (stored 0x${hex(location.checksum)}, computed 0x${hex(crc ?? 0)})`,
      { structure: 'lvm metadata text', offset: areaOffset },
    );
  }
  return pieces.length === 1 && pieces[0] ? pieces[0] : Buffer.concat(pieces);
}

function hex(value: number): string {
  return value.toString(16).padStart(8, '0');
}
