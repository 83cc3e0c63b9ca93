import { describe, expect, it } from 'vitest';
import { overlaySegments, truncateSegments } from '../../../src/ingest/rbd-export-file.js';

// The merge of an export's diffs, checked against painting the same records onto an array: each
// byte of the model holds the stream position it reads from (-1 zero, -2 never written).
type Segment = { offset: number; length: number; position: number | undefined };

function paint(model: number[], segments: Segment[]): void {
  for (const s of segments) for (let i = 0; i < s.length; i++) model[s.offset + i] = s.position === undefined ? -1 : s.position + i;
}

function render(segments: Segment[], size: number): number[] {
  const out = new Array<number>(size).fill(-2);
  paint(out, segments);
  return out;
}

function prng(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Sorted, non-overlapping random records inside [0, size). */
function records(random: () => number, size: number, base: number): Segment[] {
  const out: Segment[] = [];
  for (let at = Math.floor(random() * 8); at < size;) {
    const length = 1 + Math.floor(random() * 12);
    if (at + length > size) break;
    out.push({ offset: at, length, position: random() < 0.3 ? undefined : base + at * 7 });
    at += length + Math.floor(random() * 10);
  }
  return out;
}

describe('merging rbd export diffs', () => {
  it('lays each diff over the image so far, cut to each diff size, as painting would', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const random = prng(seed);
      let image: Segment[] = [];
      let model: number[] = [];
      for (let diff = 0; diff < 4; diff++) {
        const size = 20 + Math.floor(random() * 80);
        const upper = records(random, size, diff * 10_000);
        image = overlaySegments(truncateSegments(image, size), upper);
        model = model.slice(0, size);
        while (model.length < size) model.push(-2);
        paint(model, upper);
        const rendered = render(image, size);
        expect(rendered.map((v) => (v === -2 ? -1 : v))).toEqual(model.map((v) => (v === -2 ? -1 : v)));
        for (let i = 1; i < image.length; i++) expect(image[i]!.offset).toBeGreaterThanOrEqual(image[i - 1]!.offset + image[i - 1]!.length);
      }
    }
  });
});
