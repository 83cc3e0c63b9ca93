import { crc32 } from 'node:zlib';
import { LVM_CRC_INITIAL } from './layout.js';

/**
 * lvm2's `calc_crc` (lib/misc/crc.c): the reflected CRC-32 table of zlib, seeded with INITIAL_CRC and
 * without the final inversion. zlib inverts the running value on the way in and out, so feeding it
 * the inverted seed and inverting its answer gives lvm's raw register. `previous` continues a CRC
 * over a second piece (the wrapped part of the metadata text), as lvm chains `calc_crc` calls.
 */
export function lvmCrc(bytes: Uint8Array, previous: number = LVM_CRC_INITIAL): number {
  return ~crc32(bytes, ~previous >>> 0) >>> 0;
}
