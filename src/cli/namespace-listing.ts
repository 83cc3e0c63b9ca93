import type { GuestFileSystem } from '../core/guest-filesystem.js';
import { walkGuestTree } from '../restore/guest/walk.js';
import type { Namespace } from '../restore/namespace/namespace.js';
import type { NamespaceNode } from '../restore/namespace/nodes.js';
import { escapeGuestName } from '../url/guest-name.js';
import { formatBytes } from '../util/bytes.js';
import { guestEntryJson, modeString, type GuestEntryJson } from './guest-format.js';

/** One line of `cairn ls` below a disk: a volume, an LVM directory, or a guest entry. */
export type ListingJson =
  | (GuestEntryJson & { url: string })
  | { name: string; url: string; type: 'partition' | 'lv' | 'disk' | 'lvm' | 'vg'; size?: number; filesystem?: string | null };

/** The URL of a node below a point, from the segments that reached it. */
export function urlOf(segments: readonly string[]): string {
  return `cairn://${segments.join('/')}`;
}

async function filesystemOf(namespace: Namespace, node: NamespaceNode): Promise<GuestFileSystem | undefined> {
  if (node.kind !== 'volume') return undefined;
  const content = await namespace.volumeContent(node.point, node.volume);
  return content.kind === 'filesystem' ? content.fs : undefined;
}

/** The listing entry of `node`, reached by `segments`. */
export async function listingEntry(
  namespace: Namespace,
  node: NamespaceNode,
  segments: readonly string[],
): Promise<ListingJson | undefined> {
  const name = segments[segments.length - 1] ?? '';
  const url = urlOf(segments);
  switch (node.kind) {
    case 'guest': {
      const target = node.stat.type === 'symlink' ? escapeTarget(await node.fs.readlink(node.id)) : undefined;
      return { ...guestEntryJson(name, '/' + node.path.join('/'), node.stat, target), url };
    }
    case 'volume': {
      const fs = await filesystemOf(namespace, node);
      const type = node.volume.kind === 'partition' ? 'partition' : node.volume.kind === 'lv' ? 'lv' : 'disk';
      return { name, url, type, size: node.volume.size, filesystem: fs?.type ?? null };
    }
    case 'lvm':
      return { name, url, type: node.vg === undefined ? 'lvm' : 'vg' };
    default:
      return undefined;
  }
}

function escapeTarget(target: Buffer): string {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i <= target.length; i++) {
    if (i === target.length || target[i] === 0x2f) {
      parts.push(escapeGuestName(target.subarray(start, i)));
      start = i + 1;
    }
  }
  return parts.join('/');
}

/** `ls -l` style line of an entry; the short form is its name (with / after directories). */
export function listingLine(entry: ListingJson, long: boolean, shownName = entry.name): string {
  if (!('uid' in entry)) {
    const suffix = entry.type === 'lvm' || entry.type === 'vg' ? '/' : '';
    if (!long) return shownName + suffix;
    const size = entry.size !== undefined ? formatBytes(entry.size) : '-';
    return `${entry.type.padEnd(9)} ${size.padStart(10)}  ${(entry.filesystem ?? '-').padEnd(6)} ${shownName}${suffix}`;
  }
  const suffix = entry.type === 'dir' ? '/' : '';
  if (!long) return shownName + suffix;
  const mode = modeString(entry.type, parseInt(entry.mode, 8));
  const mtime = entry.mtime.slice(0, 19).replace('T', ' ');
  const link = entry.target !== undefined ? ` -> ${entry.target}` : '';
  return `${mode} ${String(entry.nlink).padStart(3)} ${String(entry.uid).padStart(5)} ${String(entry.gid).padStart(5)} ${String(entry.size).padStart(12)} ${mtime} ${shownName}${suffix}${link}`;
}

/**
 * The entries under `node` (reached by `segments`): its children, or with `recursive` everything
 * below it, depth-first (through partitions, LVM and into each filesystem), each as
 * `[path relative to node, entry]`. Volumes without a filesystem Cairn reads are listed, not entered.
 */
export async function* listUnder(
  namespace: Namespace,
  node: NamespaceNode,
  segments: readonly string[],
  recursive: boolean,
): AsyncGenerator<[string, ListingJson]> {
  if (recursive && node.kind === 'guest') {
    // The walk guards against directory loops in a damaged filesystem.
    for await (const { node: child, relative, event } of walkGuestTree(namespace, node)) {
      if (event === 'leave' || relative.length === 0) continue;
      const entry = await listingEntry(namespace, child, [...segments, ...relative]);
      if (entry) yield [relative.join('/'), entry];
    }
    return;
  }
  for await (const child of namespace.list(node)) {
    const resolved = await child.resolve();
    const childSegments = [...segments, child.name];
    const entry = await listingEntry(namespace, resolved, childSegments);
    if (entry) yield [child.name, entry];
    if (!recursive || !(await hasListing(namespace, resolved))) continue;
    for await (const [path, nested] of listUnder(namespace, resolved, childSegments, true)) yield [`${child.name}/${path}`, nested];
  }
}

/** Whether a recursive listing goes into `node`: directories, and volumes that hold something Cairn reads. */
async function hasListing(namespace: Namespace, node: NamespaceNode): Promise<boolean> {
  if (node.kind === 'guest') return node.stat.type === 'dir';
  if (node.kind === 'lvm') return true;
  if (node.kind !== 'volume') return false;
  const { kind } = await namespace.volumeContent(node.point, node.volume);
  return kind === 'filesystem' || kind === 'partitioned' || (kind === 'lvm-pv' && node.volume.kind === 'disk');
}
