import { parseAttributeList, type AttributeListEntry } from './attribute-list.js';
import { formatInvalid, recordName } from './errors.js';
import { ATTR_TYPE, FILE_NAME, MFT_RECORD_FLAGS, STANDARD_INFORMATION } from './layout.js';
import {
  isInUse,
  splitReference,
  type AttributeRecord,
  type MftRecord,
  type NonResidentAttribute,
  type ResidentAttribute,
} from './mft-record.js';
import { utf16Units } from './names.js';

/** $STANDARD_INFORMATION: FILETIMEs (100 ns since 1601, signed as ntfs-3g reads them) and file attributes. */
export interface StandardInformation {
  readonly creationTime: bigint;
  readonly modificationTime: bigint;
  readonly mftChangeTime: bigint;
  readonly accessTime: bigint;
  readonly fileAttributes: number;
}

/** One $FILE_NAME: a name of the file in directory `parent`, in one namespace. */
export interface FileNameInfo {
  readonly parent: number;
  readonly parentSequence: number;
  readonly name: string;
  readonly namespace: number;
  readonly fileAttributes: number;
}

/**
 * One attribute of a file gathered from all its records: a resident value, or the non-resident
 * extents in VCN order (contiguous, the first at VCN 0, which carries the sizes and flags).
 */
export interface NtfsAttribute {
  readonly type: number;
  readonly name: string;
  readonly flags: number;
  readonly resident?: ResidentAttribute;
  readonly extents: readonly NonResidentAttribute[];
}

/** A file (MFT base record plus its extension records) as the reader uses it. */
export interface NtfsNode {
  readonly record: number;
  readonly sequence: number;
  readonly recordFlags: number;
  readonly linkCount: number;
  readonly info?: StandardInformation;
  readonly names: readonly FileNameInfo[];
  readonly attributes: readonly NtfsAttribute[];
  /** Bytes the node holds, for cache accounting. */
  readonly footprint: number;
}

export const isDirectoryNode = (node: NtfsNode): boolean => (node.recordFlags & MFT_RECORD_FLAGS.IS_DIRECTORY) !== 0;

export function findAttribute(node: NtfsNode, type: number, name = ''): NtfsAttribute | undefined {
  return node.attributes.find((a) => a.type === type && a.name === name);
}

/** What assembling a node needs from the MFT: records by number and the bytes of a non-resident list. */
export interface RecordSource {
  readonly volume: string;
  readonly recordCount: number;
  record(number: number): Promise<MftRecord>;
  /** The whole value of a non-resident attribute (an $ATTRIBUTE_LIST), at most `maxBytes`. */
  readNonResident(attribute: NtfsAttribute, where: string, maxBytes: number): Promise<Buffer>;
}

/** Windows keeps attribute lists under 256 KiB; anything far beyond is damage. */
const MAX_ATTRIBUTE_LIST_BYTES = 1024 * 1024;
/**
 * Extension records one file may span: a 256 KiB list of the smallest entries names ~8000, but
 * those are runlist pieces of one attribute that share records; this bounds what one node holds.
 */
const MAX_EXTENSION_RECORDS = 4096;

/**
 * Gathers file `base` (a decoded base record, in use) into a node. With an $ATTRIBUTE_LIST the
 * attributes are taken exactly from the records the list names: each extension record must be in
 * use and name `base` as its base record, and each listed attribute must be found in its record
 * once. The list is flat (an extension record never has a list), so no cycle can form.
 */
export async function assembleNode(base: MftRecord, source: RecordSource): Promise<NtfsNode> {
  const where = recordName(base.number);
  const bad = (problem: string): Error => formatInvalid(source.volume, where, problem, { record: base.number });
  if (!isInUse(base)) throw bad('is not in use');
  if (base.baseRecord !== 0) throw bad(`is an extension of record ${base.baseRecord}, not a file`);
  const listRecords = base.attributes.filter((a) => a.type === ATTR_TYPE.ATTRIBUTE_LIST);
  let records: AttributeRecord[];
  let footprint = 400;
  if (listRecords.length === 0) {
    records = [...base.attributes];
  } else {
    if (listRecords.length > 1 || listRecords[0]!.name !== '') throw bad('has more than one attribute list');
    const list = listRecords[0]!;
    const value = list.resident
      ? list.value
      : await source.readNonResident(groupOne([list], bad), `${where} attribute list`, MAX_ATTRIBUTE_LIST_BYTES);
    const entries = parseAttributeList(value);
    if (typeof entries === 'string') throw bad(`attribute list: ${entries}`);
    records = await listedAttributes(base, entries, source, bad);
    footprint += value.length;
  }
  const names: FileNameInfo[] = [];
  let info: StandardInformation | undefined;
  const groups = new Map<string, AttributeRecord[]>();
  for (const a of records) {
    footprint += 96 + a.name.length * 2 + (a.resident ? a.value.length : a.mappingPairs.length);
    if (a.type === ATTR_TYPE.ATTRIBUTE_LIST) continue;
    if (a.type === ATTR_TYPE.FILE_NAME) {
      names.push(parseFileName(a, bad));
      continue;
    }
    if (a.type === ATTR_TYPE.STANDARD_INFORMATION) {
      if (info) throw bad('has two $STANDARD_INFORMATION attributes');
      info = parseStandardInformation(a, bad);
      continue;
    }
    const key = `${a.type}:${a.name}`;
    const group = groups.get(key);
    if (group) group.push(a);
    else groups.set(key, [a]);
  }
  const attributes = [...groups.values()].map((g) => groupOne(g, bad));
  return {
    record: base.number,
    sequence: base.sequence,
    recordFlags: base.flags,
    linkCount: base.linkCount,
    ...(info ? { info } : {}),
    names,
    attributes,
    footprint,
  };
}

/** The attribute records an attribute list names, fetched from their records and checked. */
async function listedAttributes(
  base: MftRecord,
  entries: readonly AttributeListEntry[],
  source: RecordSource,
  bad: (problem: string) => Error,
): Promise<AttributeRecord[]> {
  const byRecord = new Map<number, MftRecord>([[base.number, base]]);
  for (const e of entries) {
    if (byRecord.has(e.record)) continue;
    if (byRecord.size > MAX_EXTENSION_RECORDS) throw bad(`attribute list names more than ${MAX_EXTENSION_RECORDS} records`);
    if (e.record >= source.recordCount) throw bad(`attribute list names record ${e.record}, beyond the MFT`);
    const ext = await source.record(e.record);
    if (!isInUse(ext) || ext.baseRecord !== base.number || (ext.baseSequence !== 0 && ext.baseSequence !== base.sequence)) {
      throw bad(`attribute list names record ${e.record}, which is not an extension of this file`);
    }
    if (ext.attributes.some((a) => a.type === ATTR_TYPE.ATTRIBUTE_LIST))
      throw bad(`extension record ${e.record} has an attribute list of its own`);
    byRecord.set(e.record, ext);
  }
  const used = new Set<AttributeRecord>();
  const out: AttributeRecord[] = [];
  for (const e of entries) {
    const record = byRecord.get(e.record)!;
    const found = record.attributes.find(
      (a) => a.type === e.type && a.name === e.name && a.instance === e.instance && (a.resident || a.lowestVcn === e.lowestVcn),
    );
    if (!found || used.has(found)) {
      throw bad(`attribute list entry 0x${e.type.toString(16)} (instance ${e.instance}) is not in record ${e.record}`);
    }
    used.add(found);
    out.push(found);
  }
  // The base record's own attribute list is not listed in itself by every writer; keep the rest.
  return out;
}

/** One (type, name) group as an attribute: a single resident record, or contiguous non-resident extents. */
function groupOne(group: readonly AttributeRecord[], bad: (problem: string) => Error): NtfsAttribute {
  const first = group[0]!;
  const label = `attribute 0x${first.type.toString(16)}${first.name ? ` '${first.name}'` : ''}`;
  if (first.resident) {
    if (group.length > 1) throw bad(`${label} appears ${group.length} times`);
    return { type: first.type, name: first.name, flags: first.flags, resident: first, extents: [] };
  }
  const extents = group.map((a) => {
    if (a.resident) throw bad(`${label} is both resident and non-resident`);
    return a;
  });
  extents.sort((a, b) => a.lowestVcn - b.lowestVcn);
  if (extents[0]!.lowestVcn !== 0) throw bad(`${label} has no extent at VCN 0`);
  for (let i = 1; i < extents.length; i++) {
    if (extents[i]!.lowestVcn !== extents[i - 1]!.highestVcn + 1)
      throw bad(`${label} extents are not contiguous at VCN ${extents[i]!.lowestVcn}`);
  }
  return { type: first.type, name: first.name, flags: extents[0]!.flags, extents };
}

function parseStandardInformation(a: AttributeRecord, bad: (problem: string) => Error): StandardInformation {
  if (!a.resident || a.value.length < STANDARD_INFORMATION.MIN_SIZE)
    throw bad('$STANDARD_INFORMATION is not a resident value of 48 bytes or more');
  const v = a.value;
  return {
    creationTime: v.readBigInt64LE(STANDARD_INFORMATION.creation_time),
    modificationTime: v.readBigInt64LE(STANDARD_INFORMATION.last_data_change_time),
    mftChangeTime: v.readBigInt64LE(STANDARD_INFORMATION.last_mft_change_time),
    accessTime: v.readBigInt64LE(STANDARD_INFORMATION.last_access_time),
    fileAttributes: v.readUInt32LE(STANDARD_INFORMATION.file_attributes),
  };
}

/** Parses a $FILE_NAME value (an attribute's or an index key's): checked to hold its name. */
export function parseFileNameValue(v: Buffer): FileNameInfo | string {
  if (v.length < FILE_NAME.HEADER_SIZE) return 'a file name is truncated';
  const units = v[FILE_NAME.file_name_length]!;
  if (units === 0 || FILE_NAME.HEADER_SIZE + units * 2 > v.length) return 'a file name is empty or longer than its attribute';
  const parent = splitReference(v.readBigUInt64LE(FILE_NAME.parent_directory));
  return {
    parent: parent.record,
    parentSequence: parent.sequence,
    name: utf16Units(v, FILE_NAME.file_name, units),
    namespace: v[FILE_NAME.file_name_type]!,
    fileAttributes: v.readUInt32LE(FILE_NAME.file_attributes),
  };
}

function parseFileName(a: AttributeRecord, bad: (problem: string) => Error): FileNameInfo {
  if (!a.resident) throw bad('$FILE_NAME is not resident');
  const parsed = parseFileNameValue(a.value);
  if (typeof parsed === 'string') throw bad(parsed);
  return parsed;
}
