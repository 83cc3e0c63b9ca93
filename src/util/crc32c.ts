/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of ext4 metadata_csum, XFS v5
 * and btrfs. Slice-by-8 over eight 256-entry tables: about eight times faster than the byte-wise loop
 * in V8, which matters because every inode, directory block and extent node read is checked.
 *
 * Two entry points because the filesystems use the function differently: `crc32c` is the standard
 * checksum (initial ~0, final inversion; "123456789" gives 0xE3069283), while ext4's `ext4_chksum`
 * and XFS's `xfs_start_cksum` chain the raw register (`crc32cUpdate`: no inversion in or out, the
 * caller picks the seed).
 */
const POLY = 0x82f63b78;

const TABLES: readonly Uint32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const t0 = tables[0]!;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = t0[n]!;
    for (let t = 1; t < 8; t++) {
      c = (c >>> 8) ^ t0[c & 0xff]!;
      tables[t]![n] = c >>> 0;
    }
  }
  return tables;
})();

const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
];

/** Advances the raw CRC-32C register `crc` over `bytes[start, end)` (no pre- or post-inversion). */
export function crc32cUpdate(crc: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = crc >>> 0;
  let i = start;
  const stop8 = end - ((end - i) & 7);
  while (i < stop8) {
    const lo = (c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))) >>> 0;
    const hi = bytes[i + 4]! | (bytes[i + 5]! << 8) | (bytes[i + 6]! << 16) | (bytes[i + 7]! << 24);
    c =
      T7[lo & 0xff]! ^
      T6[(lo >>> 8) & 0xff]! ^
      T5[(lo >>> 16) & 0xff]! ^
      T4[lo >>> 24]! ^
      T3[hi & 0xff]! ^
      T2[(hi >>> 8) & 0xff]! ^
      T1[(hi >>> 16) & 0xff]! ^
      T0[hi >>> 24]!;
    i += 8;
  }
  while (i < end) c = (c >>> 8) ^ T0[(c ^ bytes[i++]!) & 0xff]!;
  return c >>> 0;
}

/** The standard CRC-32C of `bytes` (as iSCSI, RFC 3720 B.4, and `crc32c` tools report it). */
export function crc32c(bytes: Uint8Array): number {
  return ~crc32cUpdate(0xffffffff, bytes) >>> 0;
}
