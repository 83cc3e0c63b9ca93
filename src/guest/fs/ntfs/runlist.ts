/**
 * A runlist: where each range of an attribute's virtual clusters (VCNs) lives on the volume, as
 * parallel typed arrays (a fragmented file can have hundreds of thousands of runs; 24 bytes each
 * here, not an object apiece). `lcn` -1 marks a sparse run, which reads as zeros.
 */
export class RunList {
  private vcnAt: Float64Array;
  private lcnAt: Float64Array;
  private lengthAt: Float64Array;
  private size = 0;

  constructor(capacity = 4) {
    this.vcnAt = new Float64Array(capacity);
    this.lcnAt = new Float64Array(capacity);
    this.lengthAt = new Float64Array(capacity);
  }

  get count(): number {
    return this.size;
  }

  /** The first VCN after the last run (0 when empty). */
  get endVcn(): number {
    return this.size === 0 ? 0 : this.vcnAt[this.size - 1]! + this.lengthAt[this.size - 1]!;
  }

  /** Bytes the arrays hold, for cache accounting. */
  get footprint(): number {
    return this.vcnAt.byteLength * 3 + 64;
  }

  vcn(i: number): number {
    return this.vcnAt[i]!;
  }
  lcn(i: number): number {
    return this.lcnAt[i]!;
  }
  length(i: number): number {
    return this.lengthAt[i]!;
  }

  /** Appends a run at the end; merges it into the last run when it continues it. */
  push(vcn: number, lcn: number, length: number): void {
    const last = this.size - 1;
    if (last >= 0 && this.vcnAt[last]! + this.lengthAt[last]! === vcn) {
      const lastLcn = this.lcnAt[last]!;
      if ((lcn < 0 && lastLcn < 0) || (lcn >= 0 && lastLcn >= 0 && lastLcn + this.lengthAt[last]! === lcn)) {
        this.lengthAt[last] = this.lengthAt[last]! + length;
        return;
      }
    }
    if (this.size === this.vcnAt.length) this.grow();
    this.vcnAt[this.size] = vcn;
    this.lcnAt[this.size] = lcn < 0 ? -1 : lcn;
    this.lengthAt[this.size] = length;
    this.size++;
  }

  /** Index of the run holding `vcn`, or -1 when no run does. */
  find(vcn: number): number {
    let lo = 0;
    let hi = this.size - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.vcnAt[mid]! > vcn) hi = mid - 1;
      else if (this.vcnAt[mid]! + this.lengthAt[mid]! <= vcn) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  private grow(): void {
    const next = Math.max(4, this.vcnAt.length * 2);
    const copy = (a: Float64Array): Float64Array => {
      const b = new Float64Array(next);
      b.set(a);
      return b;
    };
    this.vcnAt = copy(this.vcnAt);
    this.lcnAt = copy(this.lcnAt);
    this.lengthAt = copy(this.lengthAt);
  }
}

/** What a mapping-pairs array may describe: the extent's VCN range and the volume's clusters. */
export interface MappingPairsLimits {
  readonly lowestVcn: number;
  /** highest_vcn of the attribute record; -1 for an empty attribute. */
  readonly highestVcn: number;
  readonly clusterCount: number;
  /** Runs the whole runlist may still hold (a cap against absurd fragmentation). */
  readonly maxRuns: number;
}

/** A little-endian integer of `size` bytes at `at`, sign-extended when `signed`; exact up to 2^53. */
function readVarInt(bytes: Buffer, at: number, size: number, signed: boolean): number | undefined {
  if (size <= 6) {
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + bytes[at + i]!;
    if (signed && size > 0 && bytes[at + size - 1]! & 0x80) value -= 2 ** (8 * size);
    return value;
  }
  let value = 0n;
  for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[at + i]!);
  if (signed && bytes[at + size - 1]! & 0x80) value -= 1n << BigInt(8 * size);
  return value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(value);
}

/**
 * Decodes one attribute record's mapping pairs (libfsntfs "Data runs"; ntfs-3g runlist.c
 * ntfs_mapping_pairs_decompress) from bytes[start, end) and appends them to `runs`. Each pair is a
 * header byte (low nibble: bytes of the length, high nibble: bytes of the LCN delta), the length
 * and the LCN delta from the previous run, signed; no delta bytes means a sparse run; a zero header
 * ends the array. Returns undefined when all is well, else what is wrong: the array runs past the
 * record, a length is not positive, a run lies outside the volume, or the runs do not cover
 * exactly [lowest_vcn, highest_vcn].
 */
export function decodeMappingPairs(
  bytes: Buffer,
  start: number,
  end: number,
  limits: MappingPairsLimits,
  runs: RunList,
): string | undefined {
  let at = start;
  let vcn = limits.lowestVcn;
  let lcn = 0;
  for (;;) {
    if (at >= end) return 'mapping pairs run past the end of the attribute';
    const header = bytes[at]!;
    if (header === 0) break;
    const lengthSize = header & 0x0f;
    const deltaSize = header >>> 4;
    if (lengthSize === 0 || lengthSize > 8 || deltaSize > 8)
      return `mapping pair at byte ${at - start} has an invalid header 0x${header.toString(16)}`;
    if (at + 1 + lengthSize + deltaSize > end) return 'mapping pairs run past the end of the attribute';
    const length = readVarInt(bytes, at + 1, lengthSize, true);
    if (length === undefined || length <= 0) return `mapping pair at byte ${at - start} has an invalid length`;
    if (vcn + length - 1 > limits.highestVcn) return `runs reach VCN ${vcn + length - 1}, beyond the highest VCN ${limits.highestVcn}`;
    if (deltaSize === 0) {
      runs.push(vcn, -1, length);
    } else {
      const delta = readVarInt(bytes, at + 1 + lengthSize, deltaSize, true);
      if (delta === undefined) return `mapping pair at byte ${at - start} has an invalid LCN delta`;
      lcn += delta;
      // NTFS 1.2 may write LCN -1 for a hole (runlist.c keeps it as one).
      if (lcn === -1) runs.push(vcn, -1, length);
      else if (lcn < 0 || lcn + length > limits.clusterCount)
        return `run of ${length} clusters at LCN ${lcn} lies outside the ${limits.clusterCount} clusters`;
      else runs.push(vcn, lcn, length);
    }
    if (runs.count > limits.maxRuns) return `more than ${limits.maxRuns} runs`;
    vcn += length;
    at += 1 + lengthSize + deltaSize;
  }
  const empty = vcn === limits.lowestVcn && limits.lowestVcn === 0 && limits.highestVcn <= 0;
  if (!empty && vcn !== limits.highestVcn + 1) return `runs end at VCN ${vcn - 1}, not at the highest VCN ${limits.highestVcn}`;
  return undefined;
}
