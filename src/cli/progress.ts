import { formatBytes } from '../util/bytes.js';

/** How the bar prints its amounts: bytes (`1.5 MiB`), or a count of things (`120 chunks`). */
export type ProgressUnit = { kind: 'bytes' } | { kind: 'count'; name: string };

const BYTES: ProgressUnit = { kind: 'bytes' };

/**
 * A one-line progress bar on stderr (done / total, rate, ETA), drawn only on a terminal and at most
 * ten times a second; silent otherwise, so logs and pipes stay clean.
 */
export class ProgressBar {
  private readonly startMs = Date.now();
  private lastDrawMs = 0;
  private drawn = false;

  constructor(
    private readonly label: string,
    private total: number | undefined,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = process.stderr.isTTY === true,
    private readonly unit: ProgressUnit = BYTES,
  ) {}

  /** False when nothing is drawn (not a terminal): callers may skip work done only for the bar. */
  get visible(): boolean {
    return this.enabled;
  }

  private amount(value: number): string {
    return this.unit.kind === 'bytes' ? formatBytes(value) : String(Math.round(value));
  }

  private suffix(): string {
    return this.unit.kind === 'bytes' ? '' : ` ${this.unit.name}`;
  }

  update(done: number, total = this.total): void {
    this.total = total;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDrawMs < 100) return;
    this.lastDrawMs = now;
    const seconds = Math.max(0.001, (now - this.startMs) / 1000);
    const rate = done / seconds;
    let line = `${this.label} ${this.amount(done)}${this.suffix()}`;
    if (this.total !== undefined && this.total > 0) {
      const fraction = Math.min(1, done / this.total);
      const width = 24;
      const filled = Math.round(fraction * width);
      const eta = rate > 0 ? Math.max(0, (this.total - done) / rate) : 0;
      line = `${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(1)}% ${this.amount(done)}/${this.amount(this.total)}${this.suffix()} ${this.amount(rate)}${this.suffix()}/s ETA ${formatDuration(eta)}`;
    } else {
      line += ` ${this.amount(rate)}${this.suffix()}/s`;
    }
    this.stream.write(`\r\x1b[K${line}`);
    this.drawn = true;
  }

  finish(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}

function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
