import type { ChangeExtent, ChangeMap } from '../core/block-reader.js';
import type { DiskIndex } from '../store/disk-index.js';

/**
 * Chunks of `current` whose digest differs from the same chunk of `older` (or that lie beyond the
 * older disk's end) are changed; identical digests, holes included, are not.
 */
export function indexChangeMap(current: DiskIndex, older: DiskIndex): ChangeMap {
  const chunkSize = current.chunkSize;
  const isChanged = (chunkIndex: number): boolean => {
    const end = Math.min(current.diskSize, (chunkIndex + 1) * chunkSize);
    if (end > older.diskSize) return true;
    return current.digests.get(chunkIndex) !== older.digests.get(chunkIndex);
  };
  return {
    blockSize: chunkSize,
    async changes(offset: number, length: number): Promise<ChangeExtent[]> {
      const end = Math.min(current.diskSize, offset + length);
      const result: ChangeExtent[] = [];
      let position = offset;
      while (position < end) {
        const chunkIndex = Math.floor(position / chunkSize);
        const next = Math.min(end, (chunkIndex + 1) * chunkSize);
        const changed = isChanged(chunkIndex);
        const previous = result[result.length - 1];
        if (previous && previous.changed === changed) previous.length = next - previous.offset;
        else result.push({ offset: position, length: next - position, changed });
        position = next;
      }
      return result;
    },
  };
}
