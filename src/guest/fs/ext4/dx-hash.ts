// directory.rst "Hash Tree Directories": the name hashes that order an htree (legacy, half-MD4, TEA,
// each with signed or unsigned chars). Only lookups need them; listings scan every block.
import { DX } from './layout.js';

/** MD4's round constants (the square roots of 2 and 3, as in RFC 1320). */
const K2 = 0x5a827999;
const K3 = 0x6ed9eba1;
const DEFAULT_SEED = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476] as const;

const rol = (x: number, s: number): number => ((x << s) | (x >>> (32 - s))) >>> 0;

/** A name byte as the kernel's C code sees it: `signed char` unless the hash is an unsigned variant. */
const charValue = (byte: number, unsigned: boolean): number => (unsigned || byte < 128 ? byte : byte - 256);

/** str2hashbuf: packs up to `words` words of the name, padded with a word of the remaining length. */
function packWords(name: Uint8Array, start: number, words: number, unsigned: boolean, out: Uint32Array): void {
  const remaining = name.length - start;
  let pad = (remaining | (remaining << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  const len = Math.min(remaining, words * 4);
  let val = pad;
  let w = 0;
  for (let i = 0; i < len; i++) {
    val = (charValue(name[start + i]!, unsigned) + ((val << 8) >>> 0)) >>> 0;
    if (i % 4 === 3) {
      out[w++] = val;
      val = pad;
    }
  }
  if (w < words) out[w++] = val;
  while (w < words) out[w++] = pad;
}

const F = (p: number, q: number, r: number): number => r ^ (p & (q ^ r));
const G = (p: number, q: number, r: number): number => ((p & q) + ((p ^ q) & r)) >>> 0;
const H = (p: number, q: number, r: number): number => p ^ q ^ r;
/** Per round of half-MD4: the function, its constant, the order of the input words, the shifts. */
const ROUNDS = [
  { fn: F, k: 0, order: [0, 1, 2, 3, 4, 5, 6, 7], shifts: [3, 7, 11, 19] },
  { fn: G, k: K2, order: [1, 3, 5, 7, 0, 2, 4, 6], shifts: [3, 5, 9, 13] },
  { fn: H, k: K3, order: [3, 7, 2, 6, 1, 5, 0, 4], shifts: [3, 9, 11, 15] },
] as const;

function halfMd4(buf: Uint32Array, x: Uint32Array): void {
  let a = buf[0]!;
  let b = buf[1]!;
  let c = buf[2]!;
  let d = buf[3]!;
  for (const { fn, k, order, shifts: s } of ROUNDS) {
    for (let i = 0; i < 8; i += 4) {
      a = rol((a + fn(b, c, d) + x[order[i]!]! + k) >>> 0, s[0]);
      d = rol((d + fn(a, b, c) + x[order[i + 1]!]! + k) >>> 0, s[1]);
      c = rol((c + fn(d, a, b) + x[order[i + 2]!]! + k) >>> 0, s[2]);
      b = rol((b + fn(c, d, a) + x[order[i + 3]!]! + k) >>> 0, s[3]);
    }
  }
  buf[0] = (buf[0]! + a) >>> 0;
  buf[1] = (buf[1]! + b) >>> 0;
  buf[2] = (buf[2]! + c) >>> 0;
  buf[3] = (buf[3]! + d) >>> 0;
}

function tea(buf: Uint32Array, x: Uint32Array): void {
  let sum = 0;
  let b0 = buf[0]!;
  let b1 = buf[1]!;
  const [a, b, c, d] = [x[0]!, x[1]!, x[2]!, x[3]!];
  for (let n = 0; n < 16; n++) {
    sum = (sum + 0x9e3779b9) >>> 0;
    b0 = (b0 + ((((b1 << 4) >>> 0) + a) ^ (b1 + sum) ^ ((b1 >>> 5) + b))) >>> 0;
    b1 = (b1 + ((((b0 << 4) >>> 0) + c) ^ (b0 + sum) ^ ((b0 >>> 5) + d))) >>> 0;
  }
  buf[0] = (buf[0]! + b0) >>> 0;
  buf[1] = (buf[1]! + b1) >>> 0;
}

function legacy(name: Uint8Array, unsigned: boolean): number {
  let hash0 = 0x12a3fe2d;
  let hash1 = 0x37abe8f9;
  for (const byte of name) {
    let hash = (hash1 + ((hash0 ^ Math.imul(charValue(byte, unsigned), 7152373)) >>> 0)) >>> 0;
    if (hash & 0x80000000) hash = (hash - 0x7fffffff) >>> 0;
    hash1 = hash0;
    hash0 = hash;
  }
  return (hash0 << 1) >>> 0;
}

/** True for the hash versions `dxHash` computes (siphash needs casefold keys: lookups scan instead). */
export function isSupportedHash(version: number): boolean {
  return version >= DX.HASH_LEGACY && version <= DX.HASH_TEA + DX.HASH_UNSIGNED_DELTA;
}

/** The major hash of `name` (low bit clear), as ext4fs_dirhash computes it. */
export function dxHash(name: Uint8Array, version: number, seed: readonly number[]): number {
  const unsigned = version >= DX.HASH_UNSIGNED_DELTA;
  const base = unsigned ? version - DX.HASH_UNSIGNED_DELTA : version;
  const buf = Uint32Array.from(seed.some((w) => w !== 0) ? seed : DEFAULT_SEED);
  let hash: number;
  if (base === DX.HASH_LEGACY) {
    hash = legacy(name, unsigned);
  } else if (base === DX.HASH_HALF_MD4) {
    const words = new Uint32Array(8);
    for (let p = 0; p < name.length; p += 32) {
      packWords(name, p, 8, unsigned, words);
      halfMd4(buf, words);
    }
    hash = buf[1]!;
  } else {
    const words = new Uint32Array(4);
    for (let p = 0; p < name.length; p += 16) {
      packWords(name, p, 4, unsigned, words);
      tea(buf, words);
    }
    hash = buf[0]!;
  }
  hash = (hash & ~1) >>> 0;
  // EXT4_HTREE_EOF_32BIT << 1 is reserved as the end-of-directory cookie.
  return hash === 0xfffffffe ? 0xfffffffc : hash;
}
