/**
 * UTF-16 names (VFAT long names) to and from the bytes Cairn's namespace uses: UTF-8, with an
 * unpaired surrogate written as its own 3-byte sequence (WTF-8) so that nothing the guest stored is
 * lost, and folding for the case-insensitive lookups FAT volumes expect.
 */

function isHigh(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLow(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/** UTF-16 units → WTF-8 bytes (plain UTF-8 when the units are well formed). */
export function wtf8FromUtf16(units: ArrayLike<number>): Buffer {
  const out: number[] = [];
  for (let i = 0; i < units.length; i++) {
    let code = units[i] ?? 0;
    const next = units[i + 1] ?? 0;
    if (isHigh(code) && isLow(next)) {
      code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
      i++;
    }
    if (code < 0x80) out.push(code);
    else if (code < 0x800) out.push(0xc0 | (code >> 6), 0x80 | (code & 0x3f));
    else if (code < 0x10000) out.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
    else out.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 0x3f), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
  }
  return Buffer.from(out);
}

/**
 * WTF-8 bytes → UTF-16 units, or undefined when the bytes are not WTF-8 (overlong forms, a surrogate
 * pair written as two 3-byte sequences, truncated sequences): such a name cannot match any entry.
 */
export function utf16FromWtf8(bytes: Uint8Array): number[] | undefined {
  const units: number[] = [];
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i] ?? 0;
    const length =
      lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    if (length === 0 || i + length > bytes.length) return undefined;
    let code = length === 1 ? lead : lead & (0xff >> (length + 1));
    for (let k = 1; k < length; k++) {
      const byte = bytes[i + k] ?? 0;
      if ((byte & 0xc0) !== 0x80) return undefined;
      code = (code << 6) | (byte & 0x3f);
    }
    if ((length === 3 && code < 0x800) || (length === 4 && (code < 0x10000 || code > 0x10ffff))) return undefined;
    if (code >= 0x10000) {
      units.push(0xd800 + ((code - 0x10000) >> 10), 0xdc00 + ((code - 0x10000) & 0x3ff));
    } else {
      // A high surrogate last can only have come from its own 3-byte sequence (a 4-byte one ends in a
      // low surrogate): a low one right after it is a pair written as CESU-8, not WTF-8.
      if (isLow(code) && units.length > 0 && isHigh(units[units.length - 1] ?? 0)) return undefined;
      units.push(code);
    }
    i += length;
  }
  return units;
}

let upperTable: Uint16Array | undefined;

/**
 * Case folding per UTF-16 unit, as FAT's case-insensitive names fold in Windows (one unit to one
 * unit, the way its upcase table works): a unit whose upper case is a single unit becomes it.
 * Surrogates and characters whose upper case is longer ('ß' → 'SS') stay as they are. The table is
 * built once, on the first lookup, from the engine's locale-independent `toUpperCase`.
 */
export function foldUnits(units: ArrayLike<number>): string {
  if (!upperTable) {
    upperTable = new Uint16Array(0x10000);
    for (let unit = 0; unit < 0x10000; unit++) {
      const upper = isHigh(unit) || isLow(unit) ? '' : String.fromCharCode(unit).toUpperCase();
      upperTable[unit] = upper.length === 1 ? upper.charCodeAt(0) : unit;
    }
  }
  let out = '';
  for (let i = 0; i < units.length; i++) out += String.fromCharCode(upperTable[units[i] ?? 0] ?? 0);
  return out;
}

/** The units of a JavaScript string (which is UTF-16 already). */
export function unitsOf(text: string): number[] {
  const units: number[] = [];
  for (let i = 0; i < text.length; i++) units.push(text.charCodeAt(i));
  return units;
}
