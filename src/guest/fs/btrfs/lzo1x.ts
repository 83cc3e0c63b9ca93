/**
 * An LZO1X decompressor (the format of Markus Oberhumer's LZO library, as the kernel's
 * lib/lzo/lzo1x_decompress_safe.c reads it), for the segments of btrfs's lzo extents. Every input
 * byte and every output byte is bounds-checked: a truncated or hostile stream, a back-reference
 * before the start of the output, or output beyond `maxLength` throws an `Lzo1xError`. Work is
 * linear in the output (which is bounded) plus the input.
 *
 * The stream is a sequence of instructions; the byte that opens each one, and the state left by
 * the previous one (how many literals it ended with), select its meaning:
 * - 0..15 after a match with no trailing literals (state 0): a literal run of 3 + n bytes (n = 0
 *   extends the length with zero bytes worth 255 each and a final byte);
 * - 0..15 after 1-3 trailing literals: a 2-byte match at distance 1 + (t >> 2) + (next << 2);
 * - 0..15 after a literal run of 4 or more (state 4): a 3-byte match 2049 further back;
 * - 16..31 (M4): distances 16 KiB..48 KiB, and the end-of-stream marker (distance 16384 exactly);
 * - 32..63 (M3): distances up to 16 KiB;
 * - 64..255 (M2): 3-8 byte matches up to 2 KiB back.
 * Each match's low two distance bits give 0-3 literals to copy after it (the next state).
 */
export class Lzo1xError extends Error {}

/** Zero bytes of a length extension before the decoder calls it hostile (the kernel's MAX_255_COUNT is larger; output bounds come first). */
const MAX_ZERO_RUN = 1 << 20;

export function lzo1xDecompress(input: Uint8Array, maxLength: number): Buffer {
  const out = Buffer.allocUnsafe(maxLength);
  let ip = 0;
  let op = 0;
  const inEnd = input.length;
  const fail = (problem: string): never => {
    throw new Lzo1xError(`${problem} (input byte ${ip}, output byte ${op})`);
  };
  const byte = (): number => {
    if (ip >= inEnd) fail('input ends inside an instruction');
    return input[ip++]!;
  };
  /** The extended length: zero bytes worth 255 each, then a byte added to `base`. */
  const extend = (base: number): number => {
    let zeros = 0;
    while (byte() === 0) if (++zeros > MAX_ZERO_RUN) fail('length extension is absurdly long');
    return base + zeros * 255 + input[ip - 1]!;
  };
  const literals = (count: number): void => {
    if (ip + count > inEnd) fail(`a ${count}-byte literal run overruns the input`);
    if (op + count > maxLength) fail(`output exceeds ${maxLength} bytes`);
    for (let i = 0; i < count; i++) out[op++] = input[ip++]!;
  };
  const match = (distance: number, length: number): void => {
    if (distance > op || distance <= 0) fail(`a match reaches ${distance} bytes back, before the output's start`);
    if (op + length > maxLength) fail(`output exceeds ${maxLength} bytes`);
    // Byte by byte: matches may overlap their own output (runs).
    let from = op - distance;
    for (let i = 0; i < length; i++) out[op++] = out[from++]!;
  };

  let state = 0;
  let t = byte();
  if (t > 17) {
    t -= 17;
    literals(t);
    state = t < 4 ? t : 4;
    t = byte();
  }
  for (;;) {
    let distance: number;
    let length: number;
    let next: number;
    if (t < 16) {
      if (state === 0) {
        const count = t === 0 ? extend(15) + 3 : t + 3;
        literals(count);
        state = 4;
        t = byte();
        continue;
      }
      next = t & 3;
      if (state !== 4) {
        distance = 1 + (t >> 2) + (byte() << 2);
        length = 2;
      } else {
        distance = 1 + 0x800 + (t >> 2) + (byte() << 2);
        length = 3;
      }
    } else if (t >= 64) {
      next = t & 3;
      distance = 1 + ((t >> 2) & 7) + (byte() << 3);
      length = (t >> 5) + 1;
    } else if (t >= 32) {
      length = (t & 31) === 0 ? extend(31) + 2 : (t & 31) + 2;
      const word = byte() | (byte() << 8);
      distance = 1 + (word >> 2);
      next = word & 3;
    } else {
      length = (t & 7) === 0 ? extend(7) + 2 : (t & 7) + 2;
      const word = byte() | (byte() << 8);
      distance = ((t & 8) << 11) + (word >> 2);
      next = word & 3;
      if (distance === 0) {
        // End of stream: the marker is a 3-byte M4 with no distance.
        if (length !== 3) fail('malformed end-of-stream marker');
        if (ip !== inEnd) fail(`${inEnd - ip} bytes follow the end-of-stream marker`);
        return out.subarray(0, op);
      }
      distance += 0x4000;
    }
    match(distance, length);
    if (next > 0) literals(next);
    state = next;
    t = byte();
  }
}
