import { beforeAll, describe, expect, it } from 'vitest';
import { selectPrune } from '../../../src/store/prune.js';

beforeAll(() => {
  // Periods are computed in local time, as PBS does; pin the zone so the expectations hold anywhere.
  process.env.TZ = 'UTC';
});

const point = (iso: string) => ({ id: iso.replace(/[-:]/g, '').replace('.000Z', 'Z'), createdMs: Date.parse(iso) });
const kept = (decisions: ReturnType<typeof selectPrune>) =>
  decisions
    .filter((d) => d.keep)
    .map((d) => d.point.id)
    .sort();

describe('prune selection', () => {
  const points = [
    point('2026-03-03T10:00:00Z'),
    point('2026-03-03T09:00:00Z'),
    point('2026-03-02T23:00:00Z'),
    point('2026-03-02T08:00:00Z'),
    point('2026-03-01T12:00:00Z'),
    point('2026-02-27T12:00:00Z'),
  ];

  it('keep-last keeps the N newest', () => {
    expect(kept(selectPrune(points, { last: 2 }))).toEqual(['20260303T090000Z', '20260303T100000Z']);
  });

  it('keep-daily keeps the newest point of each of the last N days', () => {
    expect(kept(selectPrune(points, { daily: 3 }))).toEqual(['20260301T120000Z', '20260302T230000Z', '20260303T100000Z']);
  });

  it('a day already covered by keep-last is not counted again', () => {
    const decisions = selectPrune(points, { last: 2, daily: 2 });
    expect(kept(decisions)).toEqual(['20260301T120000Z', '20260302T230000Z', '20260303T090000Z', '20260303T100000Z']);
    expect(decisions.find((d) => d.point.id === '20260302T230000Z')?.reasons).toEqual(['daily']);
  });

  it('keep-hourly keeps one point per hour', () => {
    const hourly = [point('2026-03-03T10:40:00Z'), point('2026-03-03T10:10:00Z'), point('2026-03-03T09:59:00Z')];
    expect(kept(selectPrune(hourly, { hourly: 5 }))).toEqual(['20260303T095900Z', '20260303T104000Z']);
  });

  it('a point passed over by keep-weekly stays removed for keep-monthly (week straddling a month, as PBS)', () => {
    const straddle = [point('2026-02-01T12:00:00Z'), point('2026-01-30T12:00:00Z'), point('2026-01-20T12:00:00Z')];
    expect(kept(selectPrune(straddle, { weekly: 1, monthly: 2 }))).toEqual(['20260120T120000Z', '20260201T120000Z']);
  });

  it('keep-yearly and keep-monthly', () => {
    const years = [
      point('2026-05-01T00:00:00Z'),
      point('2026-01-01T00:00:00Z'),
      point('2025-12-01T00:00:00Z'),
      point('2024-06-01T00:00:00Z'),
    ];
    expect(kept(selectPrune(years, { yearly: 2 }))).toEqual(['20251201T000000Z', '20260501T000000Z']);
    expect(kept(selectPrune(years, { monthly: 3 }))).toEqual(['20251201T000000Z', '20260101T000000Z', '20260501T000000Z']);
  });

  it('refuses to prune without any keep option', () => {
    expect(() => selectPrune(points, {})).toThrow(/at least one --keep/);
  });
});
