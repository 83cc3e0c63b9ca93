import type { FileHandle } from 'node:fs/promises';

/** The mtime a writer gave the chunk files it created, as the filesystem holds it (nanoseconds). */
export interface WriteMark {
  mtimeNs: bigint;
}

/**
 * Half a millisecond past the writer's start (its lock's `startedMs`). Touches set a time taken
 * from a millisecond clock, so their nanoseconds sit within a microsecond of a whole millisecond;
 * a mtime half a millisecond off one was set by its creator and by nobody since. And it is not
 * before the writer's start, which GC's cutoff never passes while the writer runs (store/gc.ts).
 */
const MARK_OFFSET_MS = 0.5;
/** The mark survived when the filesystem gives it back to within this (timestamps kept to the microsecond or better). */
const MARK_TOLERANCE_NS = 10_000n;

/**
 * Sets the mark on a chunk file just written and reads it back; undefined when the filesystem
 * rounds it away (second-granularity timestamps). Such a chunk gets the current time back, as
 * before marks existed: a mark rounded down could fall before the writer's start, which GC's
 * cutoff reaches with --grace-seconds 0. It is never taken back; GC sweeps it if it stays unused.
 */
export async function writeMark(handle: FileHandle, startedMs: number): Promise<WriteMark | undefined> {
  const markMs = startedMs + MARK_OFFSET_MS;
  await handle.utimes(markMs / 1000, markMs / 1000);
  const { mtimeNs } = await handle.stat({ bigint: true });
  const wanted = BigInt(Math.round(markMs * 1e6));
  const off = mtimeNs > wanted ? mtimeNs - wanted : wanted - mtimeNs;
  if (off <= MARK_TOLERANCE_NS) return { mtimeNs };
  const now = new Date();
  await handle.utimes(now, now);
  return undefined;
}
