import type { BlockReader } from '../../core/block-reader.js';
import type { PointInfo } from '../../core/catalog.js';
import type { GuestFileSystem, GuestNodeId, GuestStat } from '../../core/guest-filesystem.js';

/**
 * A volume of a restore point: a whole disk, one of its partitions, or an LVM logical volume (whose
 * physical volumes may lie on several disks of the point). Each is a raw image and may hold a guest
 * filesystem.
 */
export interface Volume {
  readonly kind: 'disk' | 'partition' | 'lv';
  /** The disk it is named under. */
  readonly disk: string;
  /** Path segments after DISK that name it: [], ['p1'], ['lvm', VG, LV]. */
  readonly segments: readonly string[];
  readonly size: number;
  /** `VM/POINT/DISK[/…]` with the point id spelled out: what messages call it. */
  readonly label: string;
  open(): Promise<BlockReader>;
}

/** What the namespace resolves a path to. Guest paths follow a volume that holds a filesystem. */
export type NamespaceNode =
  | { readonly kind: 'root' }
  | { readonly kind: 'vm'; readonly vm: string; readonly points: readonly PointInfo[] }
  /** `VM/latest`: FUSE shows it as a symlink to the newest point; URLs go through it. */
  | { readonly kind: 'latest'; readonly vm: string; readonly target: PointInfo }
  | { readonly kind: 'point'; readonly point: PointInfo }
  | { readonly kind: 'config'; readonly point: PointInfo; readonly blob: Buffer }
  | { readonly kind: 'volume'; readonly point: PointInfo; readonly volume: Volume }
  /** `DISK/lvm` (vg undefined) and `DISK/lvm/VG`: directories of volume groups and their LVs. */
  | { readonly kind: 'lvm'; readonly point: PointInfo; readonly disk: string; readonly vg?: string }
  | GuestNode;

export interface GuestNode {
  readonly kind: 'guest';
  readonly point: PointInfo;
  readonly volume: Volume;
  readonly fs: GuestFileSystem;
  readonly id: GuestNodeId;
  readonly stat: GuestStat;
  /** Escaped path segments inside the filesystem ([] for its root). */
  readonly path: readonly string[];
}

/** One name in a listing; `node` resolves it (listings of big directories stay cheap until asked). */
export interface NamespaceEntry {
  /** The segment as URLs and FUSE show it (guest names escaped). */
  readonly name: string;
  readonly resolve: () => Promise<NamespaceNode>;
}
