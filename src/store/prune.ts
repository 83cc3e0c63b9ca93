import { CairnError } from '../core/errors.js';

/** Retention options, with the meaning Proxmox Backup Server and restic give them. */
export interface KeepOptions {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

export interface PrunablePoint {
  id: string;
  createdMs: number;
}

export interface PruneDecision<P extends PrunablePoint> {
  point: P;
  keep: boolean;
  /** The rules that kept it (empty when removed). */
  reasons: string[];
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** ISO 8601 week-numbering year and week of a local date. */
function isoWeek(date: Date): string {
  const day = new Date(date.getFullYear(), date.getMonth(), date.getDate());
  const weekday = (day.getDay() + 6) % 7; // Monday = 0
  day.setDate(day.getDate() - weekday + 3); // Thursday of this week decides the year
  const firstThursday = new Date(day.getFullYear(), 0, 4);
  const week = 1 + Math.round((day.getTime() - firstThursday.getTime()) / 86_400_000 / 7 - (((firstThursday.getDay() + 6) % 7) - 3) / 7);
  return `${day.getFullYear()}/W${pad(week)}`;
}

/** Period keys in local time, as PBS computes them; `last` gives every point its own period. */
const RULES: { name: keyof KeepOptions; period: (d: Date, id: string) => string }[] = [
  { name: 'last', period: (_d, id) => id },
  { name: 'hourly', period: (d) => `${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())}/${pad(d.getHours())}` },
  { name: 'daily', period: (d) => `${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())}` },
  { name: 'weekly', period: (d) => isoWeek(d) },
  { name: 'monthly', period: (d) => `${d.getFullYear()}/${pad(d.getMonth() + 1)}` },
  { name: 'yearly', period: (d) => `${d.getFullYear()}` },
];

/**
 * Decides which points to keep. Rules are applied in the order last, hourly, daily, weekly, monthly,
 * yearly; each walks the points newest first and keeps the newest point of each period until it has
 * kept N periods. A period already covered by a point an earlier rule kept does not count again, and
 * such a point is not counted twice. Everything no rule keeps is removed.
 */
export function selectPrune<P extends PrunablePoint>(points: P[], keep: KeepOptions): PruneDecision<P>[] {
  const active = RULES.filter((rule) => (keep[rule.name] ?? 0) > 0);
  if (active.length === 0) {
    throw new CairnError('ERR_INVALID_ARGUMENT', 'prune needs at least one --keep-* option (refusing to remove every point)');
  }
  const newestFirst = [...points].sort((a, b) => b.createdMs - a.createdMs || (a.id < b.id ? 1 : -1));
  const reasons = new Map<string, string[]>();
  // A point a rule passed over because a newer point already holds its period stays removed for the
  // later rules too (as in PBS; it matters where weeks straddle months).
  const decided = new Set<string>();
  for (const rule of active) {
    const wanted = keep[rule.name]!;
    const covered = new Set<string>();
    for (const point of newestFirst) {
      if (reasons.has(point.id)) covered.add(rule.period(new Date(point.createdMs), point.id));
    }
    const chosen = new Set<string>();
    for (const point of newestFirst) {
      if (reasons.has(point.id) || decided.has(point.id)) continue;
      const period = rule.period(new Date(point.createdMs), point.id);
      if (covered.has(period)) continue;
      if (chosen.has(period)) {
        decided.add(point.id);
        continue;
      }
      if (chosen.size >= wanted) break;
      chosen.add(period);
      reasons.set(point.id, [rule.name]);
    }
  }
  return newestFirst.map((point) => ({ point, keep: reasons.has(point.id), reasons: reasons.get(point.id) ?? [] }));
}
