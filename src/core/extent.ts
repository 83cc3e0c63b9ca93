/**
 * One piece of an extent stream: every ingest source yields these for one disk, in offset order,
 * covering the disk without gaps or overlaps.
 * - `data`: the bytes are in `data` (exactly `length` bytes);
 * - `zero`: the range reads as zeros (a hole);
 * - `unchanged`: the range is taken from the base restore point.
 */
export type ExtentKind = 'data' | 'zero' | 'unchanged';

export interface Extent {
  offset: number;
  length: number;
  kind: ExtentKind;
  data?: Buffer;
}

/** What an allocation query answers: a range that holds data or reads as zeros. */
export interface AllocationExtent {
  offset: number;
  length: number;
  zero: boolean;
}
