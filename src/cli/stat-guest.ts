import { CairnError } from '../core/errors.js';
import type { RepositoryCatalog } from '../restore/catalog.js';
import { Namespace } from '../restore/namespace/index.js';
import { formatBytes } from '../util/bytes.js';
import { printResult, type JsonArgs } from './context.js';
import { listingEntry } from './namespace-listing.js';

/** `cairn stat` of a volume (partition, LV) or of a path inside a guest filesystem. */
export async function statBelowDisk(argv: JsonArgs, catalog: RepositoryCatalog, segments: string[]): Promise<void> {
  const namespace = new Namespace(catalog);
  const node = await namespace.resolve(segments);
  if ('point' in node && typeof node.point === 'object') segments[1] = node.point.id;
  const entry = await listingEntry(namespace, node, segments);
  if (!entry) throw new CairnError('ERR_INVALID_ARGUMENT', `cairn://${segments.join('/')} is not a volume or a guest path`);
  let details: Record<string, unknown> = {};
  if (node.kind === 'volume') {
    const content = await namespace.volumeContent(node.point, node.volume);
    details =
      content.kind === 'filesystem'
        ? { filesystem: content.fs.type, label: content.fs.label ?? null, uuid: content.fs.uuid ?? null }
        : content.kind === 'raw'
          ? { filesystem: null, note: content.reason.message }
          : { filesystem: null, holds: content.kind === 'partitioned' ? `${content.table.kind} partition table` : 'LVM physical volume' };
  } else if (node.kind === 'guest') {
    details = { filesystem: node.fs.type, volume: `cairn://${node.volume.label}`, id: node.id.toString() };
  }
  const info = { ...entry, ...details };
  printResult(argv, info, () =>
    Object.entries(info)
      .filter(([, value]) => value !== undefined && value !== null)
      .map(
        ([key, value]) =>
          `  ${`${key}:`.padEnd(11)} ${key === 'size' && typeof value === 'number' ? `${formatBytes(value)} (${value} bytes)` : Array.isArray(value) ? value.join(', ') : String(value)}`,
      ),
  );
}
