/**
 * XXH64 with seed 0 (Yann Collet's xxHash specification, "XXH64 algorithm"), the hash of btrfs's
 * `--csum xxhash`. BigInt arithmetic modulo 2^64: simple and exact; metadata blocks and data sectors
 * are a few KiB, where this costs well under a millisecond.
 */
const P1 = 0x9e3779b185ebca87n;
const P2 = 0xc2b2ae3d27d4eb4fn;
const P3 = 0x165667b19e3779f9n;
const P4 = 0x85ebca77c2b2ae63n;
const P5 = 0x27d4eb2f165667c5n;
const MASK = 0xffffffffffffffffn;

const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & MASK;
const round = (acc: bigint, lane: bigint): bigint => (rotl((acc + lane * P2) & MASK, 31n) * P1) & MASK;
const merge = (acc: bigint, value: bigint): bigint => (((acc ^ round(0n, value)) * P1 + P4) & MASK) as bigint;

/** XXH64(bytes[start, end), seed 0) as an unsigned 64-bit bigint. */
export function xxhash64(bytes: Buffer, start = 0, end = bytes.length): bigint {
  const length = end - start;
  let at = start;
  let h: bigint;
  if (length >= 32) {
    let v1 = (P1 + P2) & MASK;
    let v2 = P2;
    let v3 = 0n;
    let v4 = (MASK + 1n - P1) & MASK;
    const limit = end - 32;
    while (at <= limit) {
      v1 = round(v1, bytes.readBigUInt64LE(at));
      v2 = round(v2, bytes.readBigUInt64LE(at + 8));
      v3 = round(v3, bytes.readBigUInt64LE(at + 16));
      v4 = round(v4, bytes.readBigUInt64LE(at + 24));
      at += 32;
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = P5;
  }
  h = (h + BigInt(length)) & MASK;
  while (at + 8 <= end) {
    h = (rotl(h ^ round(0n, bytes.readBigUInt64LE(at)), 27n) * P1 + P4) & MASK;
    at += 8;
  }
  if (at + 4 <= end) {
    h = (rotl(h ^ ((BigInt(bytes.readUInt32LE(at)) * P1) & MASK), 23n) * P2 + P3) & MASK;
    at += 4;
  }
  while (at < end) {
    h = (rotl(h ^ ((BigInt(bytes[at]!) * P5) & MASK), 11n) * P1) & MASK;
    at++;
  }
  h ^= h >> 33n;
  h = (h * P2) & MASK;
  h ^= h >> 29n;
  h = (h * P3) & MASK;
  h ^= h >> 32n;
  return h;
}
