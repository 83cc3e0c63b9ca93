import { formatInvalid, recordName } from './errors.js';
import { applyFixups } from './fixups.js';
import { ATTR, ATTR_TYPE, MFT_RECORD, MFT_RECORD_FLAGS, MFT_REF, MULTI_SECTOR } from './layout.js';
import { utf16Units } from './names.js';

interface AttributeBase {
  readonly type: number;
  /** The attribute's name (a string of UTF-16 code units; '' when unnamed). */
  readonly name: string;
  readonly flags: number;
  readonly instance: number;
  /** The MFT record the attribute record sits in. */
  readonly record: number;
}

export interface ResidentAttribute extends AttributeBase {
  readonly resident: true;
  readonly value: Buffer;
}

export interface NonResidentAttribute extends AttributeBase {
  readonly resident: false;
  readonly lowestVcn: number;
  readonly highestVcn: number;
  readonly compressionUnit: number;
  /** Sizes are meaningful only in the extent whose lowest VCN is 0. */
  readonly allocatedSize: number;
  readonly dataSize: number;
  readonly initializedSize: number;
  /** The mapping pairs (and whatever padding follows them to the record's end). */
  readonly mappingPairs: Buffer;
}

export type AttributeRecord = ResidentAttribute | NonResidentAttribute;

/** One decoded MFT record (FILE record segment): its header and its attribute records, in order. */
export interface MftRecord {
  readonly number: number;
  readonly sequence: number;
  readonly linkCount: number;
  readonly flags: number;
  /** The base record this one extends (0 for a base record), and that record's sequence number. */
  readonly baseRecord: number;
  readonly baseSequence: number;
  readonly attributes: readonly AttributeRecord[];
}

export const isInUse = (r: MftRecord): boolean => (r.flags & MFT_RECORD_FLAGS.IN_USE) !== 0;
export const isDirectoryRecord = (r: MftRecord): boolean => (r.flags & MFT_RECORD_FLAGS.IS_DIRECTORY) !== 0;

/** Record number and sequence number of a file reference (MFT_REF). */
export function splitReference(ref: bigint): { record: number; sequence: number } {
  return { record: Number(ref & MFT_REF.RECORD_MASK), sequence: Number(ref >> MFT_REF.SEQUENCE_SHIFT) };
}

/** Bytes a decoded record holds, for cache accounting. */
export function recordFootprint(r: MftRecord): number {
  let n = 200;
  for (const a of r.attributes) n += 120 + a.name.length * 2 + (a.resident ? a.value.length : a.mappingPairs.length);
  return n;
}

/** A 64-bit signed field as a number, or undefined when it does not fit 2^53. */
function i64(bytes: Buffer, at: number): number | undefined {
  const v = bytes.readBigInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(v);
}

/**
 * Checks and decodes MFT record `number` from its raw bytes (modified in place by the fixups). The
 * checks follow ntfs-3g's ntfs_mft_record_check and ntfs_attr_inconsistent: the multi-sector
 * fixups, the header's sizes and offsets, every attribute record inside the used bytes with its
 * name, value or mapping pairs inside itself, attribute types in ascending order, and the list
 * closed by the end marker. A record that is not in use decodes too (callers decide).
 */
export function decodeMftRecord(bytes: Buffer, number: number, volume: string): MftRecord {
  const where = recordName(number);
  const bad = (problem: string, context = {}): Error => formatInvalid(volume, where, problem, { record: number, ...context });
  const magic = bytes.readUInt32LE(MULTI_SECTOR.magic);
  if (magic === MFT_RECORD.MAGIC_BAAD) throw bad("is marked 'BAAD' (chkdsk found it torn)");
  if (magic !== MFT_RECORD.MAGIC_FILE) throw bad(`has no 'FILE' signature (0x${magic.toString(16)})`);
  const fixup = applyFixups(bytes, MFT_RECORD.HEADER_SIZE_1_2);
  if (fixup) throw bad(fixup);
  const size = bytes.length;
  const attrsOffset = bytes.readUInt16LE(MFT_RECORD.attrs_offset);
  const bytesInUse = bytes.readUInt32LE(MFT_RECORD.bytes_in_use);
  const bytesAllocated = bytes.readUInt32LE(MFT_RECORD.bytes_allocated);
  if (bytesAllocated !== size) throw bad(`allocated size ${bytesAllocated} is not the record size ${size}`);
  if (bytesInUse > size || bytesInUse < attrsOffset + 4) throw bad(`used size ${bytesInUse} is invalid`);
  if (attrsOffset % 8 !== 0 || attrsOffset < MFT_RECORD.HEADER_SIZE_1_2) throw bad(`attribute offset ${attrsOffset} is invalid`);
  // NTFS 3.1 headers carry the record's own number: a record found at the wrong place is damage.
  if (bytes.readUInt16LE(MULTI_SECTOR.usa_ofs) >= MFT_RECORD.HEADER_SIZE_3_1) {
    const own = bytes.readUInt32LE(MFT_RECORD.mft_record_number);
    if (own !== number % 2 ** 32) throw bad(`says it is record ${own}`);
  }
  const baseRef = bytes.readBigUInt64LE(MFT_RECORD.base_mft_record);
  const base = splitReference(baseRef);
  const attributes: AttributeRecord[] = [];
  let at = attrsOffset;
  let previousType = 0;
  for (;;) {
    if (at + 4 > bytesInUse) throw bad('attribute list is not closed by the end marker');
    const type = bytes.readUInt32LE(at + ATTR.type);
    if (type === ATTR_TYPE.END) break;
    if (at + ATTR.RESIDENT_HEADER_SIZE > bytesInUse) throw bad(`attribute at byte ${at} is truncated`);
    const length = bytes.readUInt32LE(at + ATTR.length);
    if (length < ATTR.RESIDENT_HEADER_SIZE || length % 8 !== 0 || at + length > bytesInUse)
      throw bad(`attribute at byte ${at} has an invalid length ${length}`);
    if (type < previousType) throw bad(`attribute 0x${type.toString(16)} at byte ${at} is out of order`);
    previousType = type;
    attributes.push(
      decodeAttribute(bytes.subarray(at, at + length), number, (p) => bad(`attribute 0x${type.toString(16)} at byte ${at}: ${p}`)),
    );
    at += length;
  }
  return {
    number,
    sequence: bytes.readUInt16LE(MFT_RECORD.sequence_number),
    linkCount: bytes.readUInt16LE(MFT_RECORD.link_count),
    flags: bytes.readUInt16LE(MFT_RECORD.flags),
    baseRecord: base.record,
    baseSequence: base.sequence,
    attributes,
  };
}

/**
 * Decodes one attribute record (`a` spans exactly its length). Values are views of the record's
 * bytes, which belong to this decode alone (the MFT hands each decode a copy).
 */
function decodeAttribute(a: Buffer, record: number, bad: (problem: string) => Error): AttributeRecord {
  const length = a.length;
  const type = a.readUInt32LE(ATTR.type);
  const nonResident = a[ATTR.non_resident]!;
  const nameLength = a[ATTR.name_length]!;
  const nameOffset = a.readUInt16LE(ATTR.name_offset);
  if (nameLength > 0 && nameOffset + nameLength * 2 > length) throw bad('the name lies outside the attribute');
  const name = nameLength > 0 ? utf16Units(a, nameOffset, nameLength) : '';
  const flags = a.readUInt16LE(ATTR.flags);
  const instance = a.readUInt16LE(ATTR.instance);
  if (nonResident === 0) {
    const valueLength = a.readUInt32LE(ATTR.value_length);
    const valueOffset = a.readUInt16LE(ATTR.value_offset);
    if (valueOffset + valueLength > length) throw bad('the value lies outside the attribute');
    return { type, name, flags, instance, record, resident: true, value: a.subarray(valueOffset, valueOffset + valueLength) };
  }
  if (nonResident !== 1) throw bad(`non-resident flag ${nonResident} is invalid`);
  if (length < ATTR.NON_RESIDENT_HEADER_SIZE) throw bad('the non-resident header is truncated');
  const lowestVcn = i64(a, ATTR.lowest_vcn);
  const highestVcn = i64(a, ATTR.highest_vcn);
  const allocatedSize = i64(a, ATTR.allocated_size);
  const dataSize = i64(a, ATTR.data_size);
  const initializedSize = i64(a, ATTR.initialized_size);
  if (lowestVcn === undefined || highestVcn === undefined || lowestVcn < 0 || highestVcn < lowestVcn - 1)
    throw bad(`VCN range ${a.readBigInt64LE(ATTR.lowest_vcn)}-${a.readBigInt64LE(ATTR.highest_vcn)} is invalid`);
  if (
    allocatedSize === undefined ||
    dataSize === undefined ||
    initializedSize === undefined ||
    allocatedSize < 0 ||
    dataSize < 0 ||
    initializedSize < 0
  )
    throw bad('sizes are out of range');
  const mappingPairsOffset = a.readUInt16LE(ATTR.mapping_pairs_offset);
  if (mappingPairsOffset < ATTR.NON_RESIDENT_HEADER_SIZE || mappingPairsOffset >= length)
    throw bad(`mapping pairs offset ${mappingPairsOffset} is invalid`);
  return {
    type,
    name,
    flags,
    instance,
    record,
    resident: false,
    lowestVcn,
    highestVcn,
    compressionUnit: a[ATTR.compression_unit]!,
    allocatedSize,
    dataSize,
    initializedSize,
    mappingPairs: a.subarray(mappingPairsOffset),
  };
}
