import type { ChangeExtent, ChangeMap } from '../core/block-reader.js';
import { patchesOf, type DiskIndex, type SlotPatch } from '../store/disk-index.js';

const samePatch = (a: SlotPatch, b: SlotPatch): boolean =>
  a.start === b.start && a.length === b.length && a.digest === b.digest && a.chunkOffset === b.chunkOffset;

/**
 * The changed ranges of one slot, relative to the slot: none when chunk and patches are identical;
 * only the added patches when `current` is `older` plus more patches (a changed-block incremental on
 * top of its base); the whole slot otherwise.
 */
function changedInSlot(current: DiskIndex, older: DiskIndex, slot: number, slotLength: number): [number, number][] {
  const slotEnd = slot * current.chunkSize + slotLength;
  if (slotEnd > older.diskSize || current.digests.get(slot) !== older.digests.get(slot)) return [[0, slotLength]];
  const now = patchesOf(current, slot);
  const before = patchesOf(older, slot);
  if (before.length > now.length || !before.every((patch, n) => samePatch(patch, now[n]!))) return [[0, slotLength]];
  const added = now
    .slice(before.length)
    .map((patch): [number, number] => [patch.start, patch.start + patch.length])
    .sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const range of added) {
    const last = merged[merged.length - 1];
    if (last && range[0] <= last[1]) last[1] = Math.max(last[1], range[1]);
    else merged.push(range);
  }
  return merged;
}

/**
 * Where `current` differs from `older` (same bit meaning as qemu's dirty bitmaps): slots whose chunk
 * or patches differ, or that lie beyond the older disk's end. A slot that only gained patches reports
 * just the patched ranges, so restoring onto a disk that holds `older` copies only those.
 */
export function indexChangeMap(current: DiskIndex, older: DiskIndex): ChangeMap {
  const chunkSize = current.chunkSize;
  return {
    blockSize: chunkSize,
    async changes(offset: number, length: number): Promise<ChangeExtent[]> {
      const end = Math.min(current.diskSize, offset + length);
      const result: ChangeExtent[] = [];
      const add = (from: number, to: number, changed: boolean) => {
        if (to <= from) return;
        const previous = result[result.length - 1];
        if (previous && previous.changed === changed) previous.length = to - previous.offset;
        else result.push({ offset: from, length: to - from, changed });
      };
      let position = offset;
      while (position < end) {
        const slot = Math.floor(position / chunkSize);
        const slotStart = slot * chunkSize;
        const slotLength = Math.min(chunkSize, current.diskSize - slotStart);
        const next = Math.min(end, slotStart + slotLength);
        let cursor = position;
        for (const [from, to] of changedInSlot(current, older, slot, slotLength)) {
          const changedFrom = Math.max(position, slotStart + from);
          const changedTo = Math.min(next, slotStart + to);
          if (changedTo <= changedFrom) continue;
          add(cursor, changedFrom, false);
          add(changedFrom, changedTo, true);
          cursor = changedTo;
        }
        add(cursor, next, false);
        position = next;
      }
      return result;
    },
  };
}
