import type { GuestNodeId } from '../../../core/guest-filesystem.js';
import { OBJECTID } from './layout.js';

/**
 * What a GuestNodeId names. Ids are bigints packed as (see index.ts):
 * - inode:  tree << 64 | objectid (tag 0), for every file and directory of every subvolume;
 * - view root: 1 << 192 | tree << 64 | 256, the default subvolume's root directory as the
 *   filesystem's root when the default is not the top level (it lists one extra entry);
 * - placeholder: 2 << 192 | tree << 128 | dir << 64 | subvolume, the empty directory the kernel
 *   shows where a snapshot kept the entry of a nested subvolume it did not carry.
 */
export type NodeRef =
  | { readonly kind: 'inode'; readonly tree: bigint; readonly objectid: bigint }
  | { readonly kind: 'view-root'; readonly tree: bigint }
  | { readonly kind: 'placeholder'; readonly tree: bigint; readonly dir: bigint; readonly subvolume: bigint };

const U64 = (1n << 64n) - 1n;
const TAG_SHIFT = 192n;
const TAG_VIEW_ROOT = 1n;
const TAG_PLACEHOLDER = 2n;

export function packId(ref: NodeRef): GuestNodeId {
  switch (ref.kind) {
    case 'inode':
      return (ref.tree << 64n) | ref.objectid;
    case 'view-root':
      return (TAG_VIEW_ROOT << TAG_SHIFT) | (ref.tree << 64n) | OBJECTID.FIRST_FREE;
    case 'placeholder':
      return (TAG_PLACEHOLDER << TAG_SHIFT) | (ref.tree << 128n) | (ref.dir << 64n) | ref.subvolume;
  }
}

export function unpackId(id: GuestNodeId): NodeRef | undefined {
  if (typeof id !== 'bigint' || id < 0n) return undefined;
  const tag = id >> TAG_SHIFT;
  if (tag === 0n) {
    if (id >> 128n !== 0n) return undefined;
    return { kind: 'inode', tree: id >> 64n, objectid: id & U64 };
  }
  if (tag === TAG_VIEW_ROOT) {
    if ((id >> 128n) & U64 || (id & U64) !== OBJECTID.FIRST_FREE) return undefined;
    return { kind: 'view-root', tree: (id >> 64n) & U64 };
  }
  if (tag === TAG_PLACEHOLDER) return { kind: 'placeholder', tree: (id >> 128n) & U64, dir: (id >> 64n) & U64, subvolume: id & U64 };
  return undefined;
}

/**
 * The inode number the kernel's stat reports for a node: its objectid within its subvolume (256 for
 * every subvolume's root, 2 for a placeholder). Inode numbers repeat across subvolumes, which the
 * kernel tells apart by device number; GuestNodeIds do not repeat.
 */
export function btrfsInodeNumber(id: GuestNodeId): bigint | undefined {
  const ref = unpackId(id);
  if (!ref) return undefined;
  return ref.kind === 'inode' ? ref.objectid : ref.kind === 'view-root' ? OBJECTID.FIRST_FREE : OBJECTID.EMPTY_SUBVOL_DIR;
}
