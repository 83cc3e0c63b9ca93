import { UPCASE } from './layout.js';

/**
 * File name collation (layout.h COLLATION_FILE_NAME; ntfs-3g unistr.c ntfs_names_full_collate):
 * names compare code unit by code unit after mapping each through the volume's $UpCase table,
 * a shorter name first when one is a prefix of the other. Windows sorts directories by this alone;
 * ntfs-3g breaks ties between names that differ only in case by their raw code units.
 */
export class Collation {
  constructor(private readonly upcase: Uint16Array) {}

  /** The table from $UpCase's bytes, or undefined when they are not one (wrong size). */
  static fromBytes(bytes: Buffer): Collation | undefined {
    if (bytes.length !== UPCASE.SIZE) return undefined;
    const table = new Uint16Array(UPCASE.ENTRIES);
    for (let i = 0; i < UPCASE.ENTRIES; i++) table[i] = bytes.readUInt16LE(i * 2);
    return new Collation(table);
  }

  upper(unit: number): number {
    return this.upcase[unit]!;
  }

  /** -1, 0 or 1 as `a` sorts before, with or after `b` ignoring case. */
  compareIgnoringCase(a: string, b: string): number {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const x = this.upcase[a.charCodeAt(i)]!;
      const y = this.upcase[b.charCodeAt(i)]!;
      if (x !== y) return x < y ? -1 : 1;
    }
    return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
  }
}
