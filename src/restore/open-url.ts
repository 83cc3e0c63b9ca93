import type { BlockReader } from '../core/block-reader.js';
import type { Catalog } from '../core/catalog.js';
import { CairnError } from '../core/errors.js';
import type { CairnUrl } from '../url/cairn-url.js';
import { openPartition } from '../guest/partition-reader.js';

/** Opens what a pseudo-URL names as a BlockReader: a whole disk, or one partition of it. */
export async function openUrlReader(catalog: Catalog, url: CairnUrl): Promise<BlockReader> {
  if (url.vm === undefined || url.point === undefined || url.disk === undefined) {
    throw new CairnError('ERR_INVALID_ARGUMENT', 'the URL does not name a disk: expected cairn://VM/POINT/DISK[/pN]');
  }
  const disk = await catalog.openDisk(url.vm, url.point, url.disk);
  if (url.partition === undefined) return disk;
  // --- partitions (src/guest) ---
  return (await openPartition(disk, url.partition)).reader;
}
