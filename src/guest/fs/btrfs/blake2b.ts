/**
 * BLAKE2b with a 32-byte digest and no key (RFC 7693), the hash of btrfs's `--csum blake2`
 * (the kernel's "blake2b-256"): node:crypto offers only BLAKE2b-512, whose parameter block differs,
 * so its digest cannot be truncated to this one. 64-bit words are (lo, hi) pairs of a Uint32Array.
 */
const IV = new Uint32Array([
  0xf3bcc908, 0x6a09e667, 0x84caa73b, 0xbb67ae85, 0xfe94f82b, 0x3c6ef372, 0x5f1d36f1, 0xa54ff53a, 0xade682d1, 0x510e527f, 0x2b3e6c1f,
  0x9b05688c, 0xfb41bd6b, 0x1f83d9ab, 0x137e2179, 0x5be0cd19,
]);

/** RFC 7693 §2.7 message schedule; rounds 10 and 11 repeat rows 0 and 1. */
const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
].map((row) => row.map((i) => i * 2));

const BLOCK = 128;
const v = new Uint32Array(32);
const m = new Uint32Array(32);

/** v[a] += v[b] + (lo, hi), modulo 2^64. */
function add(a: number, b: number, lo: number, hi: number): void {
  const sum = v[a]! + v[b]! + lo;
  v[a + 1] = v[a + 1]! + v[b + 1]! + hi + Math.floor(sum / 0x100000000);
  v[a] = sum;
}

/** The mixing function G (RFC 7693 §3.1) on words a, b, c, d with message words x, y. */
function g(a: number, b: number, c: number, d: number, x: number, y: number): void {
  add(a, b, m[x]!, m[x + 1]!);
  let lo = v[d]! ^ v[a]!;
  let hi = v[d + 1]! ^ v[a + 1]!;
  v[d] = hi; // rotate right 32
  v[d + 1] = lo;
  add(c, d, 0, 0);
  lo = v[b]! ^ v[c]!;
  hi = v[b + 1]! ^ v[c + 1]!;
  v[b] = (lo >>> 24) | (hi << 8); // rotate right 24
  v[b + 1] = (hi >>> 24) | (lo << 8);
  add(a, b, m[y]!, m[y + 1]!);
  lo = v[d]! ^ v[a]!;
  hi = v[d + 1]! ^ v[a + 1]!;
  v[d] = (lo >>> 16) | (hi << 16); // rotate right 16
  v[d + 1] = (hi >>> 16) | (lo << 16);
  add(c, d, 0, 0);
  lo = v[b]! ^ v[c]!;
  hi = v[b + 1]! ^ v[c + 1]!;
  v[b] = (hi >>> 31) | (lo << 1); // rotate right 63
  v[b + 1] = (lo >>> 31) | (hi << 1);
}

function compress(h: Uint32Array, block: Buffer, at: number, counter: number, last: boolean): void {
  for (let i = 0; i < 32; i++) m[i] = at + i * 4 + 4 <= block.length ? block.readUInt32LE(at + i * 4) : 0;
  v.set(h, 0);
  v.set(IV, 16);
  v[24] = v[24]! ^ counter;
  v[25] = v[25]! ^ Math.floor(counter / 0x100000000);
  if (last) {
    v[28] = ~v[28]!;
    v[29] = ~v[29]!;
  }
  for (let round = 0; round < 12; round++) {
    const s = SIGMA[round % 10]!;
    g(0, 8, 16, 24, s[0]!, s[1]!);
    g(2, 10, 18, 26, s[2]!, s[3]!);
    g(4, 12, 20, 28, s[4]!, s[5]!);
    g(6, 14, 22, 30, s[6]!, s[7]!);
    g(0, 10, 20, 30, s[8]!, s[9]!);
    g(2, 12, 22, 24, s[10]!, s[11]!);
    g(4, 14, 16, 26, s[12]!, s[13]!);
    g(6, 8, 18, 28, s[14]!, s[15]!);
  }
  for (let i = 0; i < 16; i++) h[i] = h[i]! ^ v[i]! ^ v[i + 16]!;
}

/** BLAKE2b-256 of bytes[start, end) into out[at, at + 32). */
export function blake2b256(bytes: Buffer, start: number, end: number, out: Buffer, at: number): void {
  const h = new Uint32Array(IV);
  h[0] = h[0]! ^ 0x01010020; // parameter block: digest length 32, no key, fanout 1, depth 1
  const length = end - start;
  const blocks = Math.max(1, Math.ceil(length / BLOCK));
  const tail = Buffer.alloc(BLOCK);
  for (let i = 0; i < blocks; i++) {
    const from = start + i * BLOCK;
    const last = i === blocks - 1;
    if (from + BLOCK <= end) compress(h, bytes, from, (i + 1) * BLOCK, last);
    else {
      tail.fill(0);
      bytes.copy(tail, 0, from, end);
      compress(h, tail, 0, length, last);
    }
  }
  for (let i = 0; i < 8; i++) out.writeUInt32LE(h[i]!, at + i * 4);
}
