import type { NbdClient } from '../nbd/client/index.js';
import { NBD_BASE_ALLOCATION, NBD_STATE, NBD_STATE_DIRTY } from '../nbd/protocol/index.js';
import { changeRuns, type ChangeRun } from './change-runs.js';
import type { ExtentPlan } from './disk-source.js';

/** What the pull does with one range: read it, record zeros, or take it from the base point. */
export interface PullStep {
  offset: number;
  length: number;
  kind: 'read' | 'zero' | 'unchanged';
}

/** Block status is asked in windows this large (the request length is a u32; servers answer less anyway). */
const STATUS_WINDOW = 1024 * 1024 * 1024;

/**
 * Where the changed runs come from: a whole-disk read (full), the hypervisor's CBT bitmap handed in
 * the plan (Xen), or the export's dirty bitmap context (QEMU/libvirt/Proxmox incremental).
 */
export type RunSource = { kind: 'plan' } | { kind: 'dirty-bitmap'; context: string };

/** Runs of the disk in offset order: changed (to read) or unchanged (from the base). */
export async function* pullRuns(client: NbdClient, plan: ExtentPlan, source: RunSource): AsyncGenerator<ChangeRun> {
  const size = client.size;
  if (source.kind === 'plan') {
    yield* changeRuns(size, plan);
    return;
  }
  // A grown disk: what lies past the base cannot come from it, so it counts as changed.
  const unchangedLimit = Math.min(size, plan.baseSize ?? size);
  let run: ChangeRun | undefined;
  const push = function* (offset: number, length: number, changed: boolean): Generator<ChangeRun> {
    if (run && run.changed === changed && run.offset + run.length === offset) {
      run.length += length;
      return;
    }
    if (run) yield run;
    run = { offset, length, changed };
  };
  let cursor = 0;
  while (cursor < size) {
    // The dirty bitmap may be queried over the whole disk: snapshot-access exports allow that.
    const window = Math.min(STATUS_WINDOW, size - cursor);
    const extents = await client.blockStatus(source.context, cursor, window);
    for (const e of extents) {
      const dirty = (e.flags & NBD_STATE_DIRTY) !== 0;
      const splitAt = Math.max(e.offset, Math.min(e.offset + e.length, unchangedLimit));
      if (splitAt > e.offset) yield* push(e.offset, splitAt - e.offset, dirty);
      if (splitAt < e.offset + e.length) yield* push(splitAt, e.offset + e.length - splitAt, true);
    }
    cursor = extents[extents.length - 1]!.offset + extents[extents.length - 1]!.length;
  }
  if (run) yield run;
}

/**
 * Turns runs into steps. Inside a changed run, `base:allocation` (when the connection has it) tells
 * holes and zeros apart from data, asked only inside that run: exports with a bitmap refuse reads and
 * block status outside the dirty areas. Reads are split at chunk boundaries and at `maxRead`.
 */
export async function* pullSteps(
  client: NbdClient,
  runs: AsyncIterable<ChangeRun>,
  opts: { chunkSize: number; maxRead: number; useAllocation: boolean },
): AsyncGenerator<PullStep> {
  for await (const run of runs) {
    if (!run.changed) {
      yield { offset: run.offset, length: run.length, kind: 'unchanged' };
      continue;
    }
    const end = run.offset + run.length;
    if (!opts.useAllocation || !client.hasMetaContext(NBD_BASE_ALLOCATION)) {
      yield* splitReads(run.offset, end, opts);
      continue;
    }
    let cursor = run.offset;
    while (cursor < end) {
      const extents = await client.blockStatus(NBD_BASE_ALLOCATION, cursor, Math.min(STATUS_WINDOW, end - cursor));
      for (const e of extents) {
        // HOLE without ZERO means "contents undefined": only ZERO lets us skip the read.
        if (e.flags & NBD_STATE.NBD_STATE_ZERO) yield { offset: e.offset, length: e.length, kind: 'zero' };
        else yield* splitReads(e.offset, e.offset + e.length, opts);
      }
      cursor = extents[extents.length - 1]!.offset + extents[extents.length - 1]!.length;
    }
  }
}

function* splitReads(start: number, end: number, opts: { chunkSize: number; maxRead: number }): Generator<PullStep> {
  let position = start;
  while (position < end) {
    const chunkEnd = (Math.floor(position / opts.chunkSize) + 1) * opts.chunkSize;
    const next = Math.min(end, chunkEnd, position + opts.maxRead);
    yield { offset: position, length: next - position, kind: 'read' };
    position = next;
  }
}
