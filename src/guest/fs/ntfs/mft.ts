import { CairnError } from '../../../core/errors.js';
import { BoundedCache } from '../../../util/bounded-cache.js';
import { parseAttributeList } from './attribute-list.js';
import type { BootSector } from './boot-sector.js';
import { formatInvalid, recordName } from './errors.js';
import { ATTR_FLAGS, ATTR_TYPE, SYSTEM_FILES } from './layout.js';
import { decodeMftRecord, isInUse, recordFootprint, type MftRecord, type NonResidentAttribute } from './mft-record.js';
import { decodeMappingPairs, RunList } from './runlist.js';
import type { VolumeIO } from './volume-io.js';

/**
 * MFT reads come in windows of this many bytes (64 records of 1 KiB): a directory's files are
 * usually allocated together in the MFT, so a walk that stats every entry reads each window once
 * instead of one record per read.
 */
const WINDOW_BYTES = 64 * 1024;
/** Runs any one attribute may have: far beyond real fragmentation, and 48 MiB of runlist at most. */
export const MAX_RUNS = 2 * 1024 * 1024;
/** $MFT extension records the bootstrap follows (each maps a piece of the MFT). */
const MAX_MFT_EXTENSIONS = 4096;

/** The MFT: records by number through $MFT's own runlist, read a window at a time, checked, cached. */
export class Mft {
  readonly recordCount: number;
  private readonly windowRecords: number;
  private readonly windows: BoundedCache<number, Buffer>;
  private readonly records: BoundedCache<number, MftRecord>;

  private constructor(
    private readonly io: VolumeIO,
    readonly recordSize: number,
    private readonly runs: RunList,
    private readonly dataSize: number,
    private readonly initializedSize: number,
    cacheBytes: number,
  ) {
    this.recordCount = Math.floor(dataSize / recordSize);
    this.windowRecords = Math.max(1, Math.floor(WINDOW_BYTES / recordSize));
    this.windows = new BoundedCache(Math.floor(cacheBytes / 2), (b) => b.length + 64);
    this.records = new BoundedCache(Math.floor(cacheBytes / 2), recordFootprint);
  }

  /**
   * Finds the MFT: record 0 at the boot sector's $MFT cluster (or, when that copy is damaged, in
   * $MFTMirr), then the runlist of its unnamed $DATA, following $MFT's own attribute list when the
   * MFT is fragmented enough to need extension records, each read through the runlist known so far.
   */
  static async open(io: VolumeIO, boot: BootSector, cacheBytes: number, notes: string[]): Promise<Mft> {
    const name = io.name;
    let record0: MftRecord;
    try {
      record0 = decodeMftRecord(await io.read(boot.mftLcn * boot.clusterSize, boot.mftRecordSize, recordName(0)), 0, name);
    } catch (err) {
      if (!(err instanceof CairnError) || err.code !== 'ERR_FORMAT_INVALID') throw err;
      try {
        record0 = decodeMftRecord(
          await io.read(boot.mftMirrLcn * boot.clusterSize, boot.mftRecordSize, `${recordName(0)} (mirror)`),
          0,
          name,
        );
      } catch {
        throw err;
      }
      notes.push(`$MFT record 0 is damaged (${err.message}); its copy in $MFTMirr was used`);
    }
    const bad = (problem: string): Error => formatInvalid(name, `${recordName(0)} ($MFT)`, problem, { record: 0 });
    if (!isInUse(record0)) throw bad('is not in use');
    const runs = new RunList();
    const limits = (e: NonResidentAttribute): Parameters<typeof decodeMappingPairs>[3] => ({
      lowestVcn: e.lowestVcn,
      highestVcn: e.highestVcn,
      clusterCount: boot.clusterCount,
      maxRuns: MAX_RUNS,
    });
    const own = record0.attributes.filter((a): a is NonResidentAttribute => a.type === ATTR_TYPE.DATA && a.name === '' && !a.resident);
    const first = own.find((a) => a.lowestVcn === 0);
    if (!first) throw bad('has no non-resident $DATA starting at VCN 0');
    if (first.flags & (ATTR_FLAGS.COMPRESSION_MASK | ATTR_FLAGS.IS_ENCRYPTED | ATTR_FLAGS.IS_SPARSE))
      throw bad('$DATA is compressed, sparse or encrypted');
    const append = (e: NonResidentAttribute, where: string): void => {
      if (e.lowestVcn !== runs.endVcn)
        throw formatInvalid(name, where, `$MFT extent at VCN ${e.lowestVcn} does not continue VCN ${runs.endVcn}`);
      const problem = decodeMappingPairs(e.mappingPairs, 0, e.mappingPairs.length, limits(e), runs);
      if (problem) throw formatInvalid(name, where, `$MFT runlist: ${problem}`);
    };
    append(first, recordName(0));
    const list = record0.attributes.find((a) => a.type === ATTR_TYPE.ATTRIBUTE_LIST);
    const mft = new Mft(io, boot.mftRecordSize, runs, first.dataSize, Math.min(first.initializedSize, first.dataSize), cacheBytes);
    if (first.dataSize > first.allocatedSize || first.allocatedSize > boot.clusterCount * boot.clusterSize)
      throw bad('$DATA sizes are invalid');
    if (mft.recordCount <= SYSTEM_FILES.EXTEND) throw bad(`holds only ${mft.recordCount} records`);
    if (list) {
      const entries = parseAttributeList(list.resident ? list.value : await readListClusters(io, list, boot.clusterCount, bad));
      if (typeof entries === 'string') throw bad(`attribute list: ${entries}`);
      const pieces = entries
        .filter((e) => e.type === ATTR_TYPE.DATA && e.name === '' && e.lowestVcn > 0)
        .sort((a, b) => a.lowestVcn - b.lowestVcn);
      if (pieces.length > MAX_MFT_EXTENSIONS) throw bad(`attribute list names ${pieces.length} $DATA extents`);
      for (const piece of pieces) {
        const where = recordName(piece.record);
        const source = piece.record === 0 ? record0 : await mft.readSingle(piece.record);
        if (piece.record !== 0 && (!isInUse(source) || source.baseRecord !== 0))
          throw formatInvalid(name, where, 'is not an extension record of $MFT');
        const extent = source.attributes.find(
          (a): a is NonResidentAttribute => a.type === ATTR_TYPE.DATA && a.name === '' && !a.resident && a.lowestVcn === piece.lowestVcn,
        );
        if (!extent) throw formatInvalid(name, where, `holds no $MFT extent at VCN ${piece.lowestVcn}`);
        if (piece.record !== 0) append(extent, where);
      }
    }
    if (runs.endVcn * boot.clusterSize < first.dataSize)
      throw bad(`runlist maps ${runs.endVcn} clusters, short of ${first.dataSize} bytes`);
    return mft;
  }

  /** Record `number`, decoded and checked (in use or not: callers decide). */
  record(number: number): Promise<MftRecord> {
    if (!Number.isSafeInteger(number) || number < 0 || number >= this.recordCount) {
      return Promise.reject(
        formatInvalid(this.io.name, recordName(number), `lies beyond the ${this.recordCount} records of the MFT`, { record: number }),
      );
    }
    return this.records.get(number, async () => {
      const window = Math.floor(number / this.windowRecords);
      const bytes = await this.windows.get(window, () => this.readWindow(window));
      const at = (number - window * this.windowRecords) * this.recordSize;
      // Fixups rewrite the record: decode a copy so that the cached window stays as on disk.
      return decodeMftRecord(Buffer.from(bytes.subarray(at, at + this.recordSize)), number, this.io.name);
    });
  }

  /** One record read on its own through the runlist known so far (the bootstrap's extension records). */
  private async readSingle(number: number): Promise<MftRecord> {
    if (number >= this.recordCount) throw formatInvalid(this.io.name, recordName(number), 'lies beyond the MFT', { record: number });
    const bytes = Buffer.alloc(this.recordSize);
    await this.io.readRuns(this.runs, number * this.recordSize, bytes, recordName(number));
    return decodeMftRecord(bytes, number, this.io.name);
  }

  private async readWindow(window: number): Promise<Buffer> {
    const first = window * this.windowRecords;
    const count = Math.min(this.windowRecords, this.recordCount - first);
    const offset = first * this.recordSize;
    const out = Buffer.alloc(count * this.recordSize);
    // Records past the initialized size were never written: they read as zeros (no 'FILE').
    const readable = Math.max(0, Math.min(out.length, this.initializedSize - offset));
    if (readable > 0) await this.io.readRuns(this.runs, offset, out.subarray(0, readable), `${recordName(first)} ($MFT window)`);
    return out;
  }
}

/** Attribute lists past 256 KiB do not occur (Windows' limit); a bigger one is damage. */
const MAX_LIST_BYTES = 1024 * 1024;

/** A non-resident $ATTRIBUTE_LIST of $MFT: its clusters lie outside the MFT, mapped by its own runlist in record 0. */
async function readListClusters(
  io: VolumeIO,
  list: NonResidentAttribute,
  clusterCount: number,
  bad: (problem: string) => Error,
): Promise<Buffer> {
  if (list.lowestVcn !== 0 || list.dataSize > MAX_LIST_BYTES || list.dataSize > list.allocatedSize)
    throw bad(`attribute list of ${list.dataSize} bytes is invalid`);
  const runs = new RunList();
  const problem = decodeMappingPairs(
    list.mappingPairs,
    0,
    list.mappingPairs.length,
    { lowestVcn: 0, highestVcn: list.highestVcn, clusterCount, maxRuns: MAX_RUNS },
    runs,
  );
  if (problem) throw bad(`attribute list runlist: ${problem}`);
  const bytes = Buffer.alloc(list.dataSize);
  const initialized = Math.min(list.initializedSize, list.dataSize);
  await io.readRuns(runs, 0, bytes.subarray(0, initialized), `${recordName(0)} attribute list`);
  return bytes;
}
