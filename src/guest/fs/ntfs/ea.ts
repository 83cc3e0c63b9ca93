import { EA_ENTRY } from './layout.js';

/**
 * The extended attributes of an $EA value by name (latin1), values as views. Parsing stops at the
 * first entry that does not fit (EAs are a side channel here: WSL modes and device numbers), so a
 * damaged $EA only loses what follows the damage.
 */
export function parseExtendedAttributes(value: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let at = 0;
  while (at + EA_ENTRY.HEADER_SIZE <= value.length) {
    const next = value.readUInt32LE(at + EA_ENTRY.next_entry_offset);
    const nameLength = value[at + EA_ENTRY.name_length]!;
    const valueLength = value.readUInt16LE(at + EA_ENTRY.value_length);
    const valueAt = at + EA_ENTRY.name + nameLength + 1;
    if (valueAt + valueLength > value.length) break;
    const name = value.toString('latin1', at + EA_ENTRY.name, at + EA_ENTRY.name + nameLength);
    if (!out.has(name)) out.set(name, value.subarray(valueAt, valueAt + valueLength));
    if (next === 0 || next < EA_ENTRY.HEADER_SIZE) break;
    at += next;
  }
  return out;
}
