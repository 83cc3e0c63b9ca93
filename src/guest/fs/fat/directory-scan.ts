import type { DirectoryBlock } from './directory-blocks.js';
import { copyLongEntryUnits, entryKind, longEntryHeader, parseShortEntry, type ShortEntry } from './dir-entry.js';
import { DIR_ENTRY_SIZE, LONG_NAME, type FatType } from './layout.js';
import { foldUnits, unitsOf, wtf8FromUtf16 } from './long-name.js';
import { nodeId } from './node-id.js';
import { shortNameChecksum, shortNameOf } from './short-name.js';

/** One live file or directory of a directory listing. */
export interface DirItem {
  readonly id: bigint;
  /** Volume offset of the short entry. */
  readonly offset: number;
  readonly entry: ShortEntry;
  readonly isDir: boolean;
  /** The name listed: the long name when a valid one precedes the entry, else the 8.3 name. */
  readonly name: Buffer;
  /** The long name's UTF-16 units, when it has one. */
  readonly longName?: Uint16Array;
  /** The 8.3 alias as shown (case bits applied), when it can name the entry. */
  readonly shortName?: string;
}

/** The folded keys an entry answers to in a lookup: its long name (if any) and its 8.3 alias. */
export function lookupKeys(item: DirItem): string[] {
  const keys: string[] = [];
  if (item.longName) keys.push(foldUnits(item.longName));
  if (item.shortName !== undefined) keys.push(foldUnits(unitsOf(item.shortName)));
  return keys;
}

/** A long name being assembled: entries come last-part first, LDIR_Ord counting down to 1. */
interface PendingLongName {
  readonly checksum: number;
  readonly units: Uint16Array;
  nextOrd: number;
}

/**
 * Walks the 32-byte slots of a directory in order and yields its files and subdirectories
 * ("FAT Long Directory Entries", "Validating The Contents of a Directory"):
 * - a 0x00 first byte ends the directory; free (0xE5) slots, the volume label, '.' and '..' and
 *   slots whose attributes combine directory and label are skipped;
 * - long-name entries are kept only as an unbroken run N|0x40, N−1, …, 1 with one checksum, directly
 *   followed by the short entry that checksum matches; anything else is an orphan and ignored, as
 *   Windows and Linux ignore it, and the short entry is listed under its 8.3 name;
 * - a name that would read '.', '..' or empty is not listed (it could not be named in a path).
 */
export async function* scanDirectory(
  blocks: AsyncIterable<DirectoryBlock>,
  parentCluster: number,
  fatType: FatType,
): AsyncGenerator<DirItem> {
  let pending: PendingLongName | undefined;
  for await (const block of blocks) {
    for (let at = 0; at + DIR_ENTRY_SIZE <= block.bytes.length; at += DIR_ENTRY_SIZE) {
      const slot = block.bytes.subarray(at, at + DIR_ENTRY_SIZE);
      const kind = entryKind(slot);
      if (kind === 'end') return;
      if (kind === 'long') {
        pending = continueLongName(pending, slot);
        continue;
      }
      const longName =
        pending && pending.nextOrd === 0 && shortNameChecksum(slot) === pending.checksum ? finishLongName(pending.units) : undefined;
      pending = undefined;
      if (kind !== 'file' && kind !== 'dir') continue;
      const entry = parseShortEntry(slot, fatType);
      const shortName = shortNameOf(entry.nameField, entry.ntRes);
      const shortUsable = shortName !== '' && shortName !== '.' && shortName !== '..';
      const listed = longName ? longName.bytes : shortUsable ? Buffer.from(shortName, 'utf8') : undefined;
      if (!listed) continue;
      const offset = block.offset + at;
      yield {
        id: nodeId(parentCluster, offset),
        offset,
        entry,
        isDir: kind === 'dir',
        name: listed,
        ...(longName ? { longName: longName.units } : {}),
        ...(shortUsable ? { shortName } : {}),
      };
    }
  }
}

function continueLongName(pending: PendingLongName | undefined, slot: Buffer): PendingLongName | undefined {
  const { ord, checksum } = longEntryHeader(slot);
  if (ord & LONG_NAME.LAST_LONG_ENTRY) {
    const count = ord & ~LONG_NAME.LAST_LONG_ENTRY;
    if (count < 1 || count > LONG_NAME.maxEntries) return undefined;
    const started: PendingLongName = { checksum, units: new Uint16Array(count * LONG_NAME.unitsPerEntry), nextOrd: count - 1 };
    copyLongEntryUnits(slot, started.units, (count - 1) * LONG_NAME.unitsPerEntry);
    return started;
  }
  if (!pending || ord === 0 || ord !== pending.nextOrd || checksum !== pending.checksum) return undefined;
  copyLongEntryUnits(slot, pending.units, (ord - 1) * LONG_NAME.unitsPerEntry);
  pending.nextOrd = ord - 1;
  return pending;
}

/** The name's units up to the 0x0000 terminator, or undefined when it is empty, too long or a dot name. */
function finishLongName(all: Uint16Array): { units: Uint16Array; bytes: Buffer } | undefined {
  let length = all.indexOf(LONG_NAME.terminator);
  if (length < 0) length = all.length;
  if (length === 0 || length > LONG_NAME.maxUnits) return undefined;
  const units = all.subarray(0, length);
  const bytes = wtf8FromUtf16(units);
  const text = bytes.toString('latin1');
  if (text === '.' || text === '..') return undefined;
  return { units, bytes };
}
