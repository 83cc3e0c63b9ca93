import { LX_SYMLINK_DATA, MOUNT_POINT_DATA, REPARSE_POINT, REPARSE_TAG, SYMLINK_DATA } from './layout.js';
import { utf16Units } from './names.js';

/** A reparse point's tag and its data (after the 8-byte header, and the GUID of non-Microsoft tags). */
export interface ReparsePoint {
  readonly tag: number;
  readonly data: Buffer;
}

/** What a link reparse point says, before its target is turned into a POSIX path. */
export type LinkData =
  | { readonly kind: 'windows'; readonly substituteName: string; readonly relative: boolean; readonly junction: boolean }
  | { readonly kind: 'wsl'; readonly target: Buffer };

/** Names of the tags errors mention. */
export const REPARSE_TAG_NAMES: Readonly<Record<number, string>> = {
  [REPARSE_TAG.DEDUP]: 'Data Deduplication',
  [REPARSE_TAG.WOF]: 'Windows Overlay Filter (CompactOS / WIMBoot)',
  0x9000001a: 'Cloud Files (OneDrive)',
  0x80000007: 'Single Instance Storage',
  0xc0000004: 'HSM',
  0x80000006: 'HSM2',
};

/**
 * Parses a $REPARSE_POINT value (layout.h REPARSE_POINT; ntfs-3g reparse.c valid_reparse_data):
 * the declared data length must account for the whole value, with the 16-byte GUID that
 * non-Microsoft tags carry. Returns the point or what is wrong.
 */
export function parseReparsePoint(value: Buffer): ReparsePoint | string {
  if (value.length < REPARSE_POINT.HEADER_SIZE) return 'reparse point is truncated';
  const tag = value.readUInt32LE(REPARSE_POINT.reparse_tag);
  const dataLength = value.readUInt16LE(REPARSE_POINT.reparse_data_length);
  const guid = tag & REPARSE_POINT.TAG_IS_MICROSOFT ? 0 : REPARSE_POINT.GUID_SIZE;
  if (tag === 0) return 'reparse tag is zero';
  if (REPARSE_POINT.HEADER_SIZE + guid + dataLength !== value.length) {
    return `reparse data length ${dataLength} does not match the ${value.length}-byte value`;
  }
  return { tag, data: value.subarray(REPARSE_POINT.HEADER_SIZE + guid) };
}

/** The substitute name of a symlink or junction (the path Windows follows; the print name is for show). */
export function parseLinkData(point: ReparsePoint): LinkData | string {
  const d = point.data;
  if (point.tag === REPARSE_TAG.LX_SYMLINK) {
    if (d.length <= LX_SYMLINK_DATA.target || d.readUInt32LE(LX_SYMLINK_DATA.version) !== LX_SYMLINK_DATA.VERSION)
      return 'WSL symlink data is invalid';
    return { kind: 'wsl', target: Buffer.from(d.subarray(LX_SYMLINK_DATA.target)) };
  }
  const junction = point.tag === REPARSE_TAG.MOUNT_POINT;
  const layout = junction ? MOUNT_POINT_DATA : SYMLINK_DATA;
  if (d.length < layout.path_buffer) return 'link reparse data is truncated';
  const offset = d.readUInt16LE(layout.subst_name_offset);
  const length = d.readUInt16LE(layout.subst_name_length);
  if (length % 2 !== 0 || layout.path_buffer + offset + length > d.length) return 'substitute name lies outside the reparse data';
  // Junctions often end the name with a NUL that the length does not count; a counted one is dropped.
  let name = utf16Units(d, layout.path_buffer + offset, length / 2);
  while (name.endsWith('\0')) name = name.slice(0, -1);
  if (name.length === 0) return 'substitute name is empty';
  const relative = !junction && (d.readUInt32LE(SYMLINK_DATA.flags) & SYMLINK_DATA.FLAG_RELATIVE) !== 0;
  return { kind: 'windows', substituteName: name, relative, junction };
}
