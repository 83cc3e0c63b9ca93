import { applyFixups } from './fixups.js';
import { ATTR_TYPE, COLLATION, INDEX_BLOCK, INDEX_ENTRY, INDEX_HEADER, INDEX_ROOT } from './layout.js';
import { splitReference } from './mft-record.js';
import { parseFileNameValue } from './node.js';

/** One $I30 index entry: a name of a file (its $FILE_NAME key) and the file it names. */
export interface IndexEntry {
  readonly record: number;
  readonly sequence: number;
  readonly name: string;
  readonly namespace: number;
  readonly fileAttributes: number;
  /** The VCN of the index block holding the names that sort before this one, when there is one. */
  readonly child?: number;
}

/** One node of a directory's B+tree (the root or an index block): its entries in collation order. */
export interface IndexNode {
  readonly entries: readonly IndexEntry[];
  /** The child after the last entry (the end entry's sub-node). */
  readonly endChild?: number;
}

export const indexNodeFootprint = (node: IndexNode): number => 64 + node.entries.reduce((n, e) => n + 80 + e.name.length * 2, 0);

/** $INDEX_ROOT of a directory: how its index blocks are sized and its root node. */
export interface IndexRoot {
  readonly blockSize: number;
  readonly node: IndexNode;
  readonly hasChildren: boolean;
}

/**
 * Parses the entries of one index node (libfsntfs "The index value"; ntfs-3g index.c checks):
 * `bytes[header…]` is the INDEX_HEADER, entries follow from entries_offset to index_length, each
 * 8-byte aligned and inside the node, the last one flagged END; keys are $FILE_NAME values.
 */
export function parseIndexNode(bytes: Buffer, header: number, limit: number): IndexNode | string {
  if (header + INDEX_HEADER.SIZE > limit) return 'index header is truncated';
  const entriesOffset = bytes.readUInt32LE(header + INDEX_HEADER.entries_offset);
  const indexLength = bytes.readUInt32LE(header + INDEX_HEADER.index_length);
  const allocated = bytes.readUInt32LE(header + INDEX_HEADER.allocated_size);
  if (
    entriesOffset < INDEX_HEADER.SIZE ||
    entriesOffset % 8 !== 0 ||
    indexLength < entriesOffset ||
    indexLength > allocated ||
    header + allocated > limit
  ) {
    return `index header (entries at ${entriesOffset}, ${indexLength} of ${allocated} bytes) does not fit`;
  }
  const end = header + indexLength;
  const entries: IndexEntry[] = [];
  let at = header + entriesOffset;
  for (;;) {
    if (at + INDEX_ENTRY.HEADER_SIZE > end) return 'index entries are not closed by an end entry';
    const length = bytes.readUInt16LE(at + INDEX_ENTRY.length);
    const keyLength = bytes.readUInt16LE(at + INDEX_ENTRY.key_length);
    const flags = bytes.readUInt16LE(at + INDEX_ENTRY.ie_flags);
    const hasChild = (flags & INDEX_ENTRY.NODE) !== 0;
    const minLength = INDEX_ENTRY.HEADER_SIZE + (flags & INDEX_ENTRY.END ? 0 : keyLength) + (hasChild ? 8 : 0);
    if (length < minLength || length % 8 !== 0 || at + length > end)
      return `index entry at byte ${at - header} has an invalid length ${length}`;
    let child: number | undefined;
    if (hasChild) {
      const vcn = bytes.readBigInt64LE(at + length - 8);
      if (vcn < 0n || vcn > BigInt(Number.MAX_SAFE_INTEGER)) return `index entry at byte ${at - header} points at VCN ${vcn}`;
      child = Number(vcn);
    }
    if (flags & INDEX_ENTRY.END) return child === undefined ? { entries } : { entries, endChild: child };
    const key = parseFileNameValue(bytes.subarray(at + INDEX_ENTRY.key, at + INDEX_ENTRY.key + keyLength));
    if (typeof key === 'string') return `index entry at byte ${at - header}: ${key}`;
    const ref = splitReference(bytes.readBigUInt64LE(at + INDEX_ENTRY.indexed_file));
    const entry = {
      record: ref.record,
      sequence: ref.sequence,
      name: key.name,
      namespace: key.namespace,
      fileAttributes: key.fileAttributes,
    };
    entries.push(child === undefined ? entry : { ...entry, child });
    at += length;
  }
}

/** Parses a directory's $INDEX_ROOT value: an $I30 index of file names with a sane block size. */
export function parseIndexRoot(value: Buffer): IndexRoot | string {
  if (value.length < INDEX_ROOT.index + INDEX_HEADER.SIZE) return 'index root is truncated';
  if (value.readUInt32LE(INDEX_ROOT.type) !== ATTR_TYPE.FILE_NAME) return 'index root does not index file names';
  if (value.readUInt32LE(INDEX_ROOT.collation_rule) !== COLLATION.FILE_NAME) return 'index root does not collate file names';
  const blockSize = value.readUInt32LE(INDEX_ROOT.index_block_size);
  if (blockSize < INDEX_BLOCK.MIN_SIZE || blockSize > INDEX_BLOCK.MAX_SIZE || (blockSize & (blockSize - 1)) !== 0)
    return `index block size ${blockSize} is invalid`;
  const node = parseIndexNode(value, INDEX_ROOT.index, value.length);
  if (typeof node === 'string') return node;
  const hasChildren = (value[INDEX_ROOT.index + INDEX_HEADER.ih_flags]! & INDEX_HEADER.HAS_CHILDREN) !== 0;
  return { blockSize, node, hasChildren };
}

/** Checks and parses one index block ('INDX', fixups, its own VCN) read from the index allocation. */
export function decodeIndexBlock(bytes: Buffer, vcn: number): IndexNode | string {
  if (bytes.readUInt32LE(0) !== INDEX_BLOCK.MAGIC) return "has no 'INDX' signature";
  const fixup = applyFixups(bytes, INDEX_BLOCK.index + INDEX_HEADER.SIZE);
  if (fixup) return fixup;
  const own = bytes.readBigInt64LE(INDEX_BLOCK.index_block_vcn);
  if (own !== BigInt(vcn)) return `says it is at VCN ${own}`;
  return parseIndexNode(bytes, INDEX_BLOCK.index, bytes.length);
}
