import type { ExtentPlan } from './disk-source.js';

/** A run of a disk that a backup must read (changed) or may take from the base (unchanged). */
export interface ChangeRun {
  offset: number;
  length: number;
  changed: boolean;
}

/**
 * Splits [0, size) into runs to read and runs unchanged since the base, from the plan's changed-block
 * bitmap. Without a base or a bitmap everything is to be read. Ranges beyond the base disk's size are
 * always read (the disk grew).
 */
export function* changeRuns(size: number, plan: ExtentPlan): Generator<ChangeRun> {
  const bitmap = plan.changedBlocks;
  if (!plan.hasBase || !bitmap) {
    if (size > 0) yield { offset: 0, length: size, changed: true };
    return;
  }
  const unchangedLimit = Math.min(size, plan.baseSize ?? 0);
  let run: ChangeRun | undefined;
  for (let block = 0; block * bitmap.blockSize < size; block++) {
    const offset = block * bitmap.blockSize;
    const end = Math.min(size, offset + bitmap.blockSize);
    const changed = bitmap.isChanged(block) || end > unchangedLimit;
    if (run && run.changed === changed) {
      run.length = end - run.offset;
    } else {
      if (run) yield run;
      run = { offset, length: end - offset, changed };
    }
  }
  if (run) yield run;
}
