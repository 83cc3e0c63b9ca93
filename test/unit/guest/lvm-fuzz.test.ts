// Fuzzing the LVM reader: the metadata text parser, the label and mda parsing, and the VG assembly
// with LV reads, over mutations of a PV head that lvm2 wrote (test/fixtures/lvm/pv-head.json). Every
// case must end in a result or a CairnError, quickly. Inputs that ever failed are replayed first from
// test/fixtures/lvm/fuzz-regressions.json (the concrete mutations, so they replay exactly).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCairnError } from '../../../src/core/errors.js';
import { assembleVolumeGroups, scanPhysicalVolume } from '../../../src/guest/index.js';
import { parseConfigText } from '../../../src/guest/lvm/config-text.js';
import { lvmCrc } from '../../../src/guest/lvm/lvm-crc.js';
import { parseVgMetadata } from '../../../src/guest/lvm/vg-metadata.js';
import { MemoryBlockReader, PvHeadEditor, bytesFromRuns, type LvmHeadFixture } from '../../helpers/lvm-images.js';

const fixtures = join(import.meta.dirname, '../../fixtures/lvm');
const fixture = JSON.parse(readFileSync(join(fixtures, 'pv-head.json'), 'utf8')) as LvmHeadFixture;
const head = bytesFromRuns(fixture.size, fixture.runs);
const DEVICE_SIZE = 12 * 1024 * 1024;
const TEXT = new PvHeadEditor(head, lvmCrc, fixture.mda.start).text();
/** CI runs a few hundred cases; `CAIRN_FUZZ_SCALE=50` runs fifty times as many for a deeper local search. */
const SCALE = Math.max(1, Number(process.env.CAIRN_FUZZ_SCALE ?? 1) || 1);
/** A case slower than this counts as a hang. */
const CASE_BUDGET_MS = 1000;

type Target = 'text' | 'head' | 'sealed';

/** One applied mutation, concrete enough to replay without the generator. */
type Mutation =
  | { op: 'set'; at: number; byte: number }
  | { op: 'delete'; at: number; length: number }
  | { op: 'insert'; at: number; text: string }
  /** Regression cases: insert after the first occurrence of `anchor`, so they survive a new fixture. */
  | { op: 'insertAfter'; anchor: string; text: string }
  | { op: 'repeat'; at: number; length: number; times: number }
  | { op: 'truncate'; at: number };

interface Case {
  target: Target;
  seed: number;
  /** For `sealed`: which part the mutations hit (the others are re-sealed around them). */
  part?: 'label' | 'mda' | 'text';
  mutations: Mutation[];
  note?: string;
}

const TOKENS = [
  '{',
  '}',
  '[',
  ']',
  ',',
  '=',
  '"',
  "'",
  '#',
  '\\',
  '\n',
  '\0',
  '-',
  '.',
  '/',
  '0',
  '-1',
  '007',
  '4294967295',
  '4294967296',
  '9007199254740993',
  '18446744073709551615',
  '99999999999999999999999',
  'segment9 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", 0] }',
  'stripes = [',
  'type = "zero"',
  'type = "thin"',
  'x { y { z { ',
  '"pv0", 4294967295',
  'stripe_count = 128 ',
  'stripe_size = 0 ',
  'extent_size = 1 ',
  'cow_store = "root" origin = "home" ',
  '"../../x"',
  'logical_volumes { a { id = "aaaaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa" status = ["VISIBLE"] segment_count = 1 ',
];

function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

function generate(target: Target, seed: number, length: number, focus: [number, number][]): Case {
  const next = random(seed * 7919 + target.length);
  const int = (n: number): number => Math.floor(next() * n);
  const position = (): number => {
    const [from, to] = focus[int(focus.length)] as [number, number];
    return from + int(Math.max(1, to - from));
  };
  const mutations: Mutation[] = [];
  const count = 1 + int(4);
  for (let i = 0; i < count; i++) {
    const kind = int(10);
    const at = Math.min(position(), length);
    if (kind < 4) mutations.push({ op: 'set', at, byte: next() < 0.5 ? int(256) : 1 << int(8) });
    else if (kind < 6) mutations.push({ op: 'insert', at, text: TOKENS[int(TOKENS.length)] as string });
    else if (kind < 8) mutations.push({ op: 'delete', at, length: 1 + int(64) });
    else if (kind < 9) mutations.push({ op: 'repeat', at, length: 1 + int(200), times: 2 + int(2000) });
    else mutations.push({ op: 'truncate', at });
  }
  return { target, seed, mutations };
}

function mutate(input: Buffer, mutations: readonly Mutation[], keepLength: boolean): Buffer {
  let bytes = Buffer.from(input);
  for (const m of mutations) {
    if (m.op === 'insertAfter') {
      const found = bytes.indexOf(m.anchor);
      if (found < 0) throw new Error(`regression anchor ${JSON.stringify(m.anchor)} is not in the fixture`);
      const after = found + Buffer.byteLength(m.anchor);
      bytes = Buffer.concat([bytes.subarray(0, after), Buffer.from(m.text), bytes.subarray(after)]);
      continue;
    }
    const at = Math.min(m.at, bytes.length);
    if (m.op === 'set') {
      // A byte that would not change is flipped instead, so every mutation mutates.
      if (at < bytes.length) bytes[at] = m.byte === bytes[at] ? m.byte ^ 0xff : m.byte;
    } else if (m.op === 'insert') {
      bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(m.text), bytes.subarray(at)]);
    } else if (m.op === 'delete') {
      bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.length)]);
    } else if (m.op === 'repeat') {
      const slice = bytes.subarray(at, at + m.length);
      bytes = Buffer.concat([bytes.subarray(0, at), ...Array.from({ length: m.times }, () => slice), bytes.subarray(at)]);
    } else {
      bytes = bytes.subarray(0, at);
    }
  }
  if (!keepLength) return bytes;
  const out = Buffer.alloc(input.length);
  bytes.copy(out, 0, 0, Math.min(bytes.length, out.length));
  return out;
}

/** Reads a little of every LV the scan can open: both ends and the allocation of the whole. */
async function exercise(devices: MemoryBlockReader[]): Promise<void> {
  const scan = await assembleVolumeGroups(devices.map((reader, i) => ({ name: `d${i}`, reader })));
  for (const vg of scan.volumeGroups) {
    for (const lv of vg.logicalVolumes) {
      if (lv.problem) continue;
      const reader = lv.open();
      const length = Math.min(reader.size, 64 * 1024);
      await settle(reader.read(0, length));
      await settle(reader.read(reader.size - length, length));
      await settle(reader.allocation(0, reader.size));
    }
  }
}

/** A read may fail (a missing PV): only a CairnError is an acceptable failure. */
async function settle(promise: Promise<unknown>): Promise<void> {
  await promise.catch((err: unknown) => {
    if (!isCairnError(err)) throw err;
  });
}

async function runCase(c: Case): Promise<void> {
  if (c.target === 'text') {
    const text = mutate(TEXT, c.mutations, false);
    try {
      parseVgMetadata(text);
    } catch (err) {
      if (!isCairnError(err)) throw err;
    }
    try {
      parseConfigText(text);
    } catch (err) {
      if (!isCairnError(err)) throw err;
    }
    return;
  }
  if (c.target === 'head') {
    const bytes = mutate(head, c.mutations, true);
    await settle(scanPhysicalVolume(new MemoryBlockReader(bytes, DEVICE_SIZE)));
    await exercise([new MemoryBlockReader(bytes, DEVICE_SIZE)]);
    return;
  }
  const editor = new PvHeadEditor(head, lvmCrc, fixture.mda.start);
  if (c.part === 'text') editor.setText(mutate(TEXT, c.mutations, false).subarray(0, 256 * 1024));
  else if (c.part === 'label') editor.labelField((label) => mutate(label, c.mutations, true).copy(label));
  else editor.mdaField((header) => mutate(header, c.mutations, true).copy(header));
  await exercise([new MemoryBlockReader(editor.bytes, DEVICE_SIZE), new MemoryBlockReader(editor.bytes, DEVICE_SIZE / 2)]);
}

async function expectClean(c: Case): Promise<void> {
  const started = Date.now();
  try {
    await runCase(c);
  } catch (err) {
    throw new Error(`fuzz case failed (add it to fuzz-regressions.json): ${JSON.stringify(c)}\n${(err as Error).stack ?? String(err)}`);
  }
  const elapsed = Date.now() - started;
  if (elapsed > CASE_BUDGET_MS) throw new Error(`fuzz case took ${elapsed} ms: ${JSON.stringify(c)}`);
}

function cases(target: Target, count: number, part?: Case['part']): Case[] {
  const textAt = fixture.mda.start + fixture.mda.textOffset;
  const focus: Record<string, [number, number][]> = {
    text: [[0, TEXT.length]],
    head: [
      [512, 1024],
      [fixture.mda.start, fixture.mda.start + 128],
      [textAt, textAt + fixture.mda.textSize],
    ],
    label: [[20, 200]],
    mda: [[4, 120]],
  };
  const length = target === 'head' ? head.length : part === 'label' || part === 'mda' ? 512 : TEXT.length;
  return Array.from({ length: count * SCALE }, (_, i) => {
    const c = generate(target, i + 1 + (part ? part.length * 100_000 : 0), length, focus[part ?? target] as [number, number][]);
    return part ? { ...c, part } : c;
  });
}

describe('LVM fuzzing', () => {
  const regressions = JSON.parse(readFileSync(join(fixtures, 'fuzz-regressions.json'), 'utf8')) as Case[];

  it('replays every input that ever failed', async () => {
    for (const c of regressions) await expectClean(c);
  });

  it('metadata text parser: 300 mutated texts end in a VG or a CairnError', async () => {
    for (const c of cases('text', 300)) await expectClean(c);
  });

  it('label and metadata area: 150 mutated PV heads, checksums left broken', async () => {
    for (const c of cases('head', 150)) await expectClean(c);
  });

  it('label, mda header and text mutated and re-sealed: 50 + 50 + 150 cases through assembly and LV reads', async () => {
    for (const c of [...cases('sealed', 50, 'label'), ...cases('sealed', 50, 'mda'), ...cases('sealed', 150, 'text')]) await expectClean(c);
  });

  it('the mutations do reach past the checksums and the parser', async () => {
    // Guards the fuzzer itself: enough sealed text cases must still parse to a VG with LVs.
    let parsed = 0;
    for (const c of cases('sealed', 150, 'text')) {
      try {
        if (parseVgMetadata(mutate(TEXT, c.mutations, false)).logicalVolumes.length > 0) parsed++;
      } catch {
        // A rejection is fine here; this counts the others.
      }
    }
    expect(parsed).toBeGreaterThan(20);
  });
});
