/**
 * A run of logical file blocks and where they live: `physical` is the first volume block, or -1 for
 * a hole; unwritten (preallocated) runs have blocks but read as zeros.
 */
export interface BlockRun {
  logical: number;
  count: number;
  physical: number;
  unwritten: boolean;
}

/**
 * Collects runs in logical order, filling gaps with holes and merging neighbours that continue each
 * other, so that a caller can turn a whole read into a few large volume reads.
 */
export class RunList {
  readonly runs: BlockRun[] = [];
  private cursor: number;

  constructor(
    start: number,
    private readonly end: number,
  ) {
    this.cursor = start;
  }

  get position(): number {
    return this.cursor;
  }

  /** The first logical block not wanted. */
  get limit(): number {
    return this.end;
  }

  get done(): boolean {
    return this.cursor >= this.end;
  }

  /** Adds blocks [logical, logical+count) (clipped to what is still wanted); earlier gaps become holes. */
  add(logical: number, count: number, physical: number, unwritten: boolean): void {
    const from = Math.max(logical, this.cursor);
    const to = Math.min(logical + count, this.end);
    if (to <= from) return;
    if (from > this.cursor) this.push(this.cursor, from - this.cursor, -1, false);
    if (physical >= 0) physical += from - logical;
    this.push(from, to - from, physical, unwritten);
    this.cursor = to;
  }

  /** Ends the list: whatever was not mapped up to the end is a hole. */
  finish(): BlockRun[] {
    if (this.cursor < this.end) this.push(this.cursor, this.end - this.cursor, -1, false);
    this.cursor = this.end;
    return this.runs;
  }

  private push(logical: number, count: number, physical: number, unwritten: boolean): void {
    const last = this.runs[this.runs.length - 1];
    if (last && last.logical + last.count === logical && last.unwritten === unwritten) {
      const continues = physical < 0 ? last.physical < 0 : last.physical >= 0 && last.physical + last.count === physical;
      if (continues) {
        last.count += count;
        return;
      }
    }
    this.runs.push({ logical, count, physical, unwritten });
  }
}
