/**
 * Names: NTFS stores UTF-16 code units that need not pair up (libfsntfs "The file name attribute":
 * not strict UTF-16). Inside the reader a name is a JS string of those code units, exactly; at the
 * interface it is UTF-8 with each unpaired surrogate written as its own 3-byte sequence (WTF-8), so
 * that every name maps to bytes and back without loss.
 */

/** The `units` UTF-16LE code units at bytes[at…] as a string of the same code units. */
export function utf16Units(bytes: Buffer, at: number, units: number): string {
  let out = '';
  // Chunks keep String.fromCharCode's argument list short.
  for (let i = 0; i < units; i += 1024) {
    const n = Math.min(1024, units - i);
    const codes = new Array<number>(n);
    for (let k = 0; k < n; k++) codes[k] = bytes.readUInt16LE(at + 2 * (i + k));
    out += String.fromCharCode(...codes);
  }
  return out;
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** WTF-8 bytes of a string of UTF-16 code units. */
export function toWtf8(name: string): Buffer {
  // Well-formed names (nearly all) go through the fast path; only lone surrogates need the loop.
  if (!SURROGATE.test(name)) return Buffer.from(name, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < name.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < name.length) {
      const low = name.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return Buffer.from(out);
}

/**
 * The UTF-16 code units WTF-8 `bytes` stand for, or undefined when they are not WTF-8 (such a name
 * cannot be in an NTFS directory). A surrogate pair written as two 3-byte sequences is refused, as
 * WTF-8 requires, so that each name has exactly one byte form.
 */
export function fromWtf8(bytes: Buffer): string | undefined {
  const units: number[] = [];
  let afterLead = false;
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let c: number;
    let n: number;
    if (b < 0x80) [c, n] = [b, 0];
    else if (b >= 0xc2 && b <= 0xdf) [c, n] = [b & 0x1f, 1];
    else if (b >= 0xe0 && b <= 0xef) [c, n] = [b & 0x0f, 2];
    else if (b >= 0xf0 && b <= 0xf4) [c, n] = [b & 0x07, 3];
    else return undefined;
    if (i + n >= bytes.length && n > 0) return undefined;
    for (let k = 1; k <= n; k++) {
      const cont = bytes[i + k]!;
      if ((cont & 0xc0) !== 0x80) return undefined;
      c = (c << 6) | (cont & 0x3f);
    }
    // Overlong forms and values past U+10FFFF have no place in WTF-8 either.
    if ((n === 2 && c < 0x800) || (n === 3 && (c < 0x10000 || c > 0x10ffff))) return undefined;
    if (c >= 0x10000) {
      c -= 0x10000;
      units.push(0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff));
      afterLead = false;
    } else {
      if (afterLead && c >= 0xdc00 && c <= 0xdfff) return undefined;
      units.push(c);
      afterLead = c >= 0xd800 && c <= 0xdbff;
    }
    i += n + 1;
  }
  let out = '';
  for (let k = 0; k < units.length; k += 1024) out += String.fromCharCode(...units.slice(k, k + 1024));
  return out;
}
