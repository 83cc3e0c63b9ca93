import { DIR_ENTRY, DIR_NAME0, NT_CASE } from './layout.js';

/**
 * The OEM code page of 8.3 names. FAT does not record which one wrote a volume; Cairn reads CP437,
 * the default of Linux's vfat (`codepage=437`) and of US-English DOS and Windows. (mtools defaults to
 * CP850; the tests set mtools to 437.) Bytes 0x00–0x7F map to themselves as in Linux's nls_cp437;
 * 0x80–0xFF are CP437's characters as the Unicode mapping tables give them.
 */
const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒ' +
  'áíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐' +
  '└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀' +
  'αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';
if ([...CP437_HIGH].length !== 128) throw new Error('CP437 table must map 128 bytes');

export function decodeCp437(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte < 0x80 ? String.fromCharCode(byte) : CP437_HIGH[byte - 0x80];
  return out;
}

const SPACE = 0x20;
const NAME_LENGTH = DIR_ENTRY.DIR_Name.size;
const BASE_LENGTH = 8;

function trimSpaces(bytes: Uint8Array): Uint8Array {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === SPACE) end--;
  return bytes.subarray(0, end);
}

/** Lowers ASCII A–Z only: Windows sets the NT case bits only for names whose letters are ASCII. */
function lowerAscii(bytes: Uint8Array): Uint8Array {
  return bytes.map((b) => (b >= 0x41 && b <= 0x5a ? b + 0x20 : b));
}

/**
 * The 8.3 name of a short entry as Linux's vfat shows it: base and extension without their padding,
 * joined by a dot when there is an extension, each lowered when DIR_NTRes says so, 0x05 in the first
 * byte read as 0xE5 ("FAT Directory Structure").
 */
export function shortNameOf(nameField: Uint8Array, ntRes: number): string {
  const raw = Uint8Array.from(nameField.subarray(0, NAME_LENGTH));
  if (raw[0] === DIR_NAME0.KANJI_E5) raw[0] = DIR_NAME0.FREE;
  let base = trimSpaces(raw.subarray(0, BASE_LENGTH));
  let ext = trimSpaces(raw.subarray(BASE_LENGTH));
  if (ntRes & NT_CASE.LOWER_BASE) base = lowerAscii(base);
  if (ntRes & NT_CASE.LOWER_EXT) ext = lowerAscii(ext);
  return ext.length > 0 ? `${decodeCp437(base)}.${decodeCp437(ext)}` : decodeCp437(base);
}

/** "FAT Long Directory Entries": the checksum long entries carry of the 11 name bytes as stored. */
export function shortNameChecksum(nameField: Uint8Array): number {
  let sum = 0;
  // An 8-bit rotate right and add: the sum wraps at every step.
  for (let i = 0; i < NAME_LENGTH; i++) sum = (((sum & 1) << 7) + (sum >> 1) + (nameField[i] ?? 0)) & 0xff;
  return sum;
}
