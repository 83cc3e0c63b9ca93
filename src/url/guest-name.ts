/**
 * Guest file names in URLs and the FUSE tree. A guest name is bytes (ext4, XFS and btrfs store any
 * byte but '/' and NUL; FAT and NTFS names arrive as UTF-8 converted from UTF-16). A name that is
 * valid UTF-8 and holds neither '/' nor '%' is shown as it is; otherwise every byte that is '%', '/',
 * a control character or part of an invalid UTF-8 sequence is written as `%XX` (two upper-case hex
 * digits). The mapping is reversible: `unescapeGuestName(escapeGuestName(b))` equals `b` for every
 * byte string, and names that need no escaping (nearly all) read the same everywhere.
 */
import { isUtf8 } from 'node:buffer';

const PERCENT = 0x25;
const SLASH = 0x2f;

function needsEscape(byte: number): boolean {
  return byte === PERCENT || byte === SLASH || byte < 0x20 || byte === 0x7f;
}

/** Length of the valid UTF-8 sequence starting at `i` (1-4), or 0 when it is not one (overlongs and surrogates included). */
function utf8SequenceLength(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i]!;
  if (b0 < 0x80) return 1;
  let length: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) [length, min] = [2, 0x80];
  else if (b0 >= 0xe0 && b0 <= 0xef) [length, min] = [3, 0x800];
  else if (b0 >= 0xf0 && b0 <= 0xf4) [length, min] = [4, 0x10000];
  else return 0;
  if (i + length > bytes.length) return 0;
  let code = b0 & (0xff >> (length + 1));
  for (let k = 1; k < length; k++) {
    const b = bytes[i + k]!;
    if ((b & 0xc0) !== 0x80) return 0;
    code = (code << 6) | (b & 0x3f);
  }
  if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
  return length;
}

const hex = (byte: number): string => '%' + byte.toString(16).toUpperCase().padStart(2, '0');

export function escapeGuestName(name: Uint8Array): string {
  // Nearly every name needs no escape: say so with one native UTF-8 check and one scan.
  if (!name.some(needsEscape) && isUtf8(name)) return Buffer.from(name.buffer, name.byteOffset, name.length).toString('utf8');
  let out = '';
  let i = 0;
  while (i < name.length) {
    const byte = name[i]!;
    if (byte < 0x80) {
      out += needsEscape(byte) ? hex(byte) : String.fromCharCode(byte);
      i++;
      continue;
    }
    const length = utf8SequenceLength(name, i);
    if (length === 0) {
      out += hex(byte);
      i++;
    } else {
      out += Buffer.from(name.subarray(i, i + length)).toString('utf8');
      i += length;
    }
  }
  return out;
}

/**
 * The bytes an escaped name stands for. A '%' not followed by two hex digits stands for itself, so a
 * name typed by hand with a lone '%' still finds the file.
 */
export function unescapeGuestName(text: string): Buffer {
  const utf8 = Buffer.from(text, 'utf8');
  if (!utf8.includes(PERCENT)) return utf8;
  const out = Buffer.alloc(utf8.length);
  let length = 0;
  for (let i = 0; i < utf8.length; i++) {
    const byte = utf8[i]!;
    if (byte === PERCENT && i + 2 < utf8.length && isHex(utf8[i + 1]) && isHex(utf8[i + 2])) {
      out[length++] = parseInt(String.fromCharCode(utf8[i + 1]!, utf8[i + 2]!), 16);
      i += 2;
    } else {
      out[length++] = byte;
    }
  }
  return out.subarray(0, length);
}

function isHex(byte: number | undefined): boolean {
  return byte !== undefined && ((byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66));
}
