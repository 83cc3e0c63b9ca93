import type { ChangeMap } from '../../core/block-reader.js';
import { NBD_BASE_ALLOCATION } from '../protocol/constants.js';
import type { ExportRegistry, ResolvedExport } from './export-registry.js';

/** Cairn's own context: blocks that differ from an older point (bit 0 set = changed, like qemu:dirty-bitmap). */
export const CAIRN_CHANGED_PREFIX = 'cairn:changed:';

/** A meta context a connection can select, and where its answers come from. */
export type MetaContext =
  | { name: string; kind: 'allocation' }
  | { name: string; kind: 'changed'; changes: ChangeMap }
  /** LIST answers name contexts without opening their maps. */
  | { name: string; kind: 'listed' };

/**
 * Matches LIST_META_CONTEXT / SET_META_CONTEXT queries against what an export offers. Unknown
 * namespaces and unknown leaves are ignored (spec); wildcards (`base:`, `cairn:`, `cairn:changed:`)
 * only expand for LIST. An empty LIST query list means everything.
 */
export async function matchMetaContexts(
  registry: ExportRegistry,
  exp: ResolvedExport,
  queries: readonly string[],
  mode: 'list' | 'set',
): Promise<MetaContext[]> {
  const found = new Map<string, MetaContext>();
  const listAll = mode === 'list' && queries.length === 0;
  const changedNames = async (): Promise<string[]> => (await registry.comparablePoints(exp)).map((p) => CAIRN_CHANGED_PREFIX + p.id);

  if (listAll) {
    found.set(NBD_BASE_ALLOCATION, { name: NBD_BASE_ALLOCATION, kind: 'allocation' });
    for (const name of await changedNames()) found.set(name, { name, kind: 'listed' });
    return [...found.values()];
  }
  for (const query of queries) {
    if (query === NBD_BASE_ALLOCATION) {
      found.set(query, { name: query, kind: 'allocation' });
    } else if (mode === 'list' && query === 'base:') {
      found.set(NBD_BASE_ALLOCATION, { name: NBD_BASE_ALLOCATION, kind: 'allocation' });
    } else if (mode === 'list' && (query === 'cairn:' || query === CAIRN_CHANGED_PREFIX)) {
      for (const name of await changedNames()) found.set(name, { name, kind: 'listed' });
    } else if (query.startsWith(CAIRN_CHANGED_PREFIX) && query.length > CAIRN_CHANGED_PREFIX.length) {
      if (found.has(query)) continue;
      const since = query.slice(CAIRN_CHANGED_PREFIX.length);
      if (since === exp.point.id) continue;
      const changes = await registry.changeMap(exp, since);
      if (!changes) continue;
      found.set(query, mode === 'list' ? { name: query, kind: 'listed' } : { name: query, kind: 'changed', changes });
    }
  }
  return [...found.values()];
}
