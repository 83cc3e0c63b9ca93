import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCairnError } from '../../../src/core/errors.js';
import type { Extent } from '../../../src/core/extent.js';
import { RbdStreamDecoder, type RbdEvent } from '../../../src/formats/rbd-diff.js';
import { vhdChecksum } from '../../../src/formats/vhd-layout.js';
import { openSource } from '../../../src/ingest/open-source.js';

// Bounded fuzzing of the three image parsers: mutated headers, tables and streams must end in a
// CairnError or in a complete extent stream, within a deadline, never in a crash (RangeError,
// TypeError) or a hang. Seeds are fixed, so a run is repeatable; a seed that ever failed is kept in
// REGRESSIONS and replayed first.
const MiB = 1024 * 1024;
const ITERATIONS = 120;
const DEADLINE_MS = 4000;
/** Seeds that once failed: [target, seed]. */
const REGRESSIONS: [string, number][] = [];

function prng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-fuzz-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Reads a whole source (bounded: at most 4096 extents), hashing its data; the outcome is a digest or an error code. */
async function consume(file: string, format: 'qcow2' | 'vhd' | 'rbd-diff'): Promise<string> {
  let source;
  try {
    source = await openSource(file, { format });
  } catch (err) {
    if (isCairnError(err)) return err.code;
    throw err;
  }
  try {
    const hash = createHash('sha256');
    let count = 0;
    for await (const extent of source.extents({ chunkSize: MiB, hasBase: false }) as AsyncIterable<Extent>) {
      hash.update(`${extent.offset}:${extent.length}:${extent.kind}`);
      if (extent.data) hash.update(extent.data);
      if (++count > 4096) break;
    }
    return hash.digest('hex');
  } catch (err) {
    if (isCairnError(err)) return err.code;
    throw err;
  } finally {
    await source.close();
  }
}

/** Mutates `count` bytes of `image` inside [from, to), a few of them set to extreme values. */
function mutate(image: Buffer, random: () => number, ranges: [number, number][], count: number): Buffer {
  const out = Buffer.from(image);
  for (let n = 0; n < count; n++) {
    const [from, to] = ranges[Math.floor(random() * ranges.length)]!;
    const at = from + Math.floor(random() * Math.max(1, Math.min(out.length, to) - from));
    const pick = random();
    out[at] = pick < 0.2 ? 0xff : pick < 0.4 ? 0 : Math.floor(random() * 256);
  }
  return random() < 0.15 ? out.subarray(0, Math.floor(random() * out.length)) : out;
}

/** Outcomes per target (error code, or `ok`), printed with FUZZ_VERBOSE=1 to see what a run reached. */
const outcomes = new Map<string, Map<string, number>>();
function note(target: string, outcome: string): string {
  const counts = outcomes.get(target) ?? new Map<string, number>();
  const key = /^ERR_/.test(outcome) ? outcome : 'ok';
  counts.set(key, (counts.get(key) ?? 0) + 1);
  outcomes.set(target, counts);
  return outcome;
}
afterAll(() => {
  if (process.env.FUZZ_VERBOSE) for (const [target, counts] of outcomes) console.log(target, Object.fromEntries(counts));
});

async function fuzz(target: string, run: (seed: number) => Promise<void>): Promise<void> {
  const started = Date.now();
  const seeds = [...REGRESSIONS.filter(([t]) => t === target).map(([, s]) => s), ...Array.from({ length: ITERATIONS }, (_, i) => i + 1)];
  for (const seed of seeds) {
    if (Date.now() - started > DEADLINE_MS) break;
    try {
      await run(seed);
    } catch (err) {
      throw new Error(`${target} seed ${seed}: ${(err as Error).stack ?? String(err)}`);
    }
  }
}

describe('fuzzing the image parsers', () => {
  it('qcow2: mutated header, L1 and L2 tables (plain, zstd-compressed, extended L2)', async () => {
    const raw = join(dir, 'q.raw');
    const data = Buffer.alloc(3 * MiB);
    for (let i = 0; i < data.length; i += 4096) data.write(`block ${i}\n`.repeat(100), i, 'latin1');
    writeFileSync(raw, data);
    const images = ['compat=1.1', 'compression_type=zstd', 'extended_l2=on'].map((options, n) => {
      const file = join(dir, `base-${n}.qcow2`);
      execFileSync('qemu-img', ['convert', ...(n === 1 ? ['-c'] : []), '-O', 'qcow2', '-o', `cluster_size=64k,${options}`, raw, file]);
      return readFileSync(file);
    });
    await fuzz('qcow2', async (seed) => {
      const random = prng(seed);
      const image = images[seed % images.length]!;
      const l1 = Number(image.readBigUInt64BE(40));
      const l2 = Number(image.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
      const file = join(dir, 'mutant.qcow2');
      writeFileSync(
        file,
        mutate(
          image,
          random,
          [
            [0, 112],
            [l1, l1 + 64],
            [l2, l2 + 512],
          ],
          1 + Math.floor(random() * 6),
        ),
      );
      expect(note('qcow2', await consume(file, 'qcow2'))).toMatch(/^(ERR_[A-Z_]+|[0-9a-f]{64})$/);
    });
  });

  it('VHD: mutated footer, header and BAT, checksums sometimes made right again', async () => {
    const raw = join(dir, 'v.raw');
    writeFileSync(raw, Buffer.alloc(5 * MiB, 0x3c));
    const file0 = join(dir, 'base.vhd');
    execFileSync('qemu-img', ['convert', '-O', 'vpc', raw, file0]);
    const image = readFileSync(file0);
    await fuzz('vhd', async (seed) => {
      const random = prng(seed);
      const mutant = mutate(
        image,
        random,
        [
          [0, 512],
          [512, 1536],
          [1536, 1600],
        ],
        1 + Math.floor(random() * 4),
      );
      if (mutant.length >= 1536 && random() < 0.6) {
        mutant.writeUInt32BE(vhdChecksum(mutant.subarray(0, 512), 64), 64);
        mutant.writeUInt32BE(vhdChecksum(mutant.subarray(512, 1536), 36), 512 + 36);
      }
      const file = join(dir, 'mutant.vhd');
      writeFileSync(file, mutant);
      expect(note('vhd', await consume(file, 'vhd'))).toMatch(/^(ERR_[A-Z_]+|[0-9a-f]{64})$/);
    });
  });

  it('rbd diff: mutated streams end in an error or a complete stream; any split of a valid stream gives the same events', async () => {
    const records: Buffer[] = [Buffer.from('rbd diff v1\n')];
    const name = (tag: string, text: string) => {
      const b = Buffer.alloc(5 + text.length);
      b.write(tag, 0, 'latin1');
      b.writeUInt32LE(text.length, 1);
      b.write(text, 5, 'latin1');
      return b;
    };
    records.push(name('f', 'snap-a'), name('t', 'snap-b'));
    const size = Buffer.alloc(9);
    size.write('s');
    size.writeBigUInt64LE(BigInt(4 * MiB), 1);
    records.push(size);
    for (const [tag, offset, length] of [
      ['w', 0, 5000],
      ['z', 8192, 4096],
      ['w', MiB, 70_000],
      ['w', 3 * MiB, 1],
    ] as const) {
      const head = Buffer.alloc(17);
      head.write(tag);
      head.writeBigUInt64LE(BigInt(offset), 1);
      head.writeBigUInt64LE(BigInt(length), 9);
      records.push(head);
      if (tag === 'w') records.push(Buffer.alloc(length, offset & 0xff || 7));
    }
    records.push(Buffer.from('e'));
    const stream = Buffer.concat(records);
    const decode = (bytes: Buffer, random: () => number): string => {
      const decoder = new RbdStreamDecoder('rbd-diff');
      const events: RbdEvent[] = [];
      try {
        for (let at = 0; at < bytes.length;) {
          const step = 1 + Math.floor(random() * 9000);
          events.push(...decoder.push(bytes.subarray(at, at + step)));
          at += step;
        }
        decoder.finish();
      } catch (err) {
        if (isCairnError(err)) return err.code;
        throw err;
      }
      const hash = createHash('sha256');
      for (const event of events)
        hash.update(
          JSON.stringify({ ...event, data: event.type === 'data' ? event.data?.toString('base64') : undefined, position: undefined }),
        );
      // Data pieces depend on the split; their concatenation must not.
      return hash.digest('hex').length === 64 ? JSON.stringify(collapse(events)) : 'bad';
    };
    const reference = decode(stream, prng(999));
    expect(reference).toContain('snap-b');
    await fuzz('rbd-split', async (seed) => {
      expect(decode(stream, prng(seed))).toBe(reference);
    });
    await fuzz('rbd', async (seed) => {
      const random = prng(seed);
      const mutant = mutate(
        stream,
        random,
        [
          [0, 60],
          [60, 120],
          [5000, 5100],
          [stream.length - 80, stream.length],
        ],
        1 + Math.floor(random() * 4),
      );
      expect(note('rbd', decode(mutant, random))).toMatch(/^(ERR_[A-Z_]+|\[.*\])$/s);
    });
  });
});

/** Events with data pieces of one record joined, so any split of the input compares equal. */
function collapse(events: RbdEvent[]): unknown[] {
  const out: { type: string; offset?: number; bytes?: string; [key: string]: unknown }[] = [];
  for (const event of events) {
    const last = out[out.length - 1];
    if (event.type === 'data') {
      const piece = event.data!.toString('hex');
      if (last && last.type === 'data' && (last.offset as number) + (last.bytes as string).length / 2 === event.offset) last.bytes += piece;
      else out.push({ type: 'data', offset: event.offset, bytes: piece });
    } else out.push({ ...event });
  }
  return out;
}
