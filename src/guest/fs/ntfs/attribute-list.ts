import { ATTR_LIST_ENTRY } from './layout.js';
import { splitReference } from './mft-record.js';
import { utf16Units } from './names.js';

/** One $ATTRIBUTE_LIST entry: where one attribute record (or one extent of it) of the file lives. */
export interface AttributeListEntry {
  readonly type: number;
  readonly name: string;
  readonly lowestVcn: number;
  readonly record: number;
  readonly sequence: number;
  readonly instance: number;
}

/**
 * Parses an $ATTRIBUTE_LIST value (layout.h ATTR_LIST_ENTRY; libfsntfs "The attribute list
 * entry"): entries of at least 26 bytes, each with its name inside it, back to back to the end.
 * Returns the entries or what is wrong.
 */
export function parseAttributeList(value: Buffer): AttributeListEntry[] | string {
  const entries: AttributeListEntry[] = [];
  let at = 0;
  while (at < value.length) {
    if (at + ATTR_LIST_ENTRY.HEADER_SIZE > value.length) {
      // Windows pads the list; trailing zeros are not an entry.
      if (value.subarray(at).every((b) => b === 0)) break;
      return `entry at byte ${at} is truncated`;
    }
    const length = value.readUInt16LE(at + ATTR_LIST_ENTRY.length);
    const type = value.readUInt32LE(at + ATTR_LIST_ENTRY.type);
    if (type === 0 && length === 0) break;
    if (length < ATTR_LIST_ENTRY.HEADER_SIZE || at + length > value.length) return `entry at byte ${at} has an invalid length ${length}`;
    const nameLength = value[at + ATTR_LIST_ENTRY.name_length]!;
    const nameOffset = value[at + ATTR_LIST_ENTRY.name_offset]!;
    if (nameLength > 0 && nameOffset + nameLength * 2 > length) return `entry at byte ${at} has its name outside it`;
    const lowestVcn = value.readBigInt64LE(at + ATTR_LIST_ENTRY.lowest_vcn);
    if (lowestVcn < 0n || lowestVcn > BigInt(Number.MAX_SAFE_INTEGER)) return `entry at byte ${at} has an invalid lowest VCN`;
    const ref = splitReference(value.readBigUInt64LE(at + ATTR_LIST_ENTRY.mft_reference));
    entries.push({
      type,
      name: nameLength > 0 ? utf16Units(value, at + nameOffset, nameLength) : '',
      lowestVcn: Number(lowestVcn),
      record: ref.record,
      sequence: ref.sequence,
      instance: value.readUInt16LE(at + ATTR_LIST_ENTRY.instance),
    });
    at += length;
  }
  return entries;
}
