import type { BlockReader } from '../core/block-reader.js';
import { CairnError } from '../core/errors.js';
import type { GuestStat } from '../core/guest-filesystem.js';
import type { Logger } from '../log/index.js';
import { GuestFileReader, LATEST, Namespace, type GuestNode, type NamespaceNode, type Volume } from '../restore/namespace/index.js';
import { escapeGuestName } from '../url/guest-name.js';
import { BufferReader } from './buffer-reader.js';
import { TtlCache } from './ttl-cache.js';

/** Ownership and permission details a guest node carries (the repository's own nodes have none). */
export interface GuestAttributes {
  /** Permission bits (0o7777) as the guest has them. */
  permissions: number;
  nlink: number;
  atimeMs: number;
  ctimeMs: number;
}

/** What a path in the mounted tree is. Files open to a BlockReader (disk, volume, config blob, guest file). */
export type TreeNode =
  | { kind: 'dir'; mtimeMs: number; guest?: GuestAttributes }
  | { kind: 'symlink'; target: string; mtimeMs: number; guest?: GuestAttributes }
  | { kind: 'file'; size: number; mtimeMs: number; open: () => Promise<BlockReader>; guest?: GuestAttributes };

export const RAW_SUFFIX = '.raw';

/** Listings of the repository itself may be this stale: new points appear within about a second. */
const LISTING_TTL_MS = 1000;
/** Resolved nodes below a point (immutable once published), kept by count. */
const MAX_CACHED_NODES = 50_000;

function notFound(path: string): CairnError {
  return new CairnError('ERR_NOT_FOUND', `no such entry: ${path}`, { path });
}

/** A namespace node as FUSE shows it: a volume is both `NAME.raw` (its image) and `NAME/` (what it holds). */
interface FuseNode {
  ns: NamespaceNode;
  image: boolean;
}

const nsToMs = (ns: bigint): number => Number(ns / 1_000_000n);

/**
 * The FUSE tree, in the names of the pseudo-URLs (docs/namespace.md): `VM/latest → POINT`,
 * `VM/POINT/DISK.raw` and `VM/POINT/DISK/` (partitions `pN.raw` and `pN/`, or the guest's files when
 * a filesystem fills the disk), `VM/POINT/config`. Every name goes through the one Namespace.
 */
export class NamespaceTree {
  readonly namespace: Namespace;
  private readonly shallow = new TtlCache<FuseNode>(LISTING_TTL_MS, 4096);
  private readonly deep = new TtlCache<FuseNode>(Number.POSITIVE_INFINITY, MAX_CACHED_NODES);
  readonly mountedMs = Date.now();

  constructor(
    namespace: Namespace,
    private readonly log: Logger,
  ) {
    this.namespace = namespace;
  }

  private node(parts: readonly string[]): Promise<FuseNode> {
    if (parts.length === 0) return Promise.resolve({ ns: { kind: 'root' }, image: false });
    const key = parts.join('/');
    if (parts.length <= 2 || parts[1] === LATEST) return this.shallow.get(key, () => this.step(parts));
    // Below a point everything is immutable; the point itself is checked through the fresh VM listing.
    return this.node(parts.slice(0, 2)).then(() => this.deep.get(key, () => this.step(parts)));
  }

  private async step(parts: readonly string[]): Promise<FuseNode> {
    const parent = await this.node(parts.slice(0, -1));
    if (parent.image) throw notFound(parts.join('/'));
    const name = parts[parts.length - 1]!;
    const image = name.endsWith(RAW_SUFFIX) ? await this.imageChild(parent.ns, name.slice(0, -RAW_SUFFIX.length), parts) : undefined;
    if (image) return image;
    const ns = await this.namespace.child(parent.ns, name, parts);
    // A disk is always a directory (empty when Cairn reads nothing in it); a partition or LV only where it holds a filesystem.
    if (ns.kind === 'volume' && ns.volume.kind !== 'disk' && !(await this.hasContents(ns.point, ns.volume)))
      throw notFound(parts.join('/'));
    return { ns, image: false };
  }

  /** `NAME.raw` under a point (a disk) or a partitioned disk (a partition): the volume's image. */
  private async imageChild(parent: NamespaceNode, name: string, parts: readonly string[]): Promise<FuseNode | undefined> {
    if (parent.kind !== 'point' && !(parent.kind === 'volume' && parent.volume.kind === 'disk')) return undefined;
    if (parent.kind === 'volume' && (await this.namespace.volumeContent(parent.point, parent.volume)).kind !== 'partitioned')
      return undefined;
    try {
      const ns = await this.namespace.child(parent, name, parts);
      return ns.kind === 'volume' ? { ns, image: true } : undefined;
    } catch {
      return undefined;
    }
  }

  private async hasContents(point: Parameters<Namespace['volumeContent']>[0], volume: Volume): Promise<boolean> {
    const { kind } = await this.namespace.volumeContent(point, volume);
    // A physical volume's LVs are under its disk's lvm/, not under the partition.
    return kind !== 'raw' && !(kind === 'lvm-pv' && volume.kind !== 'disk');
  }

  /** Names in a directory. */
  async list(path: string): Promise<string[]> {
    const parts = splitPath(path);
    const { ns, image } = await this.node(parts);
    if (image) throw notFound(path);
    if (ns.kind === 'latest') throw notFound(path); // a symlink; the kernel follows it
    if (ns.kind === 'volume' && !(await this.hasContents(ns.point, ns.volume))) return [];
    const names: string[] = [];
    for await (const entry of this.namespace.list(ns)) {
      if (holdsImages(ns)) {
        const child = await entry.resolve();
        if (child.kind === 'volume') {
          names.push(entry.name + RAW_SUFFIX);
          if (child.volume.kind === 'disk' || (await this.hasContents(child.point, child.volume))) names.push(entry.name);
          continue;
        }
      }
      names.push(entry.name);
    }
    return names;
  }

  async lookup(path: string): Promise<TreeNode> {
    const { ns, image } = await this.node(splitPath(path));
    if (image && ns.kind === 'volume') {
      return { kind: 'file', size: ns.volume.size, mtimeMs: ns.point.createdMs, open: () => ns.volume.open() };
    }
    switch (ns.kind) {
      case 'root':
        return { kind: 'dir', mtimeMs: this.mountedMs };
      case 'vm':
        return { kind: 'dir', mtimeMs: ns.points[ns.points.length - 1]?.createdMs ?? this.mountedMs };
      case 'latest':
        return { kind: 'symlink', target: ns.target.id, mtimeMs: ns.target.createdMs };
      case 'point':
      case 'volume':
      case 'lvm':
        return { kind: 'dir', mtimeMs: ns.point.createdMs };
      case 'config': {
        const blob = ns.blob;
        return { kind: 'file', size: blob.length, mtimeMs: ns.point.createdMs, open: async () => new BufferReader(blob) };
      }
      case 'guest':
        return this.guestNode(ns);
    }
  }

  private async guestNode(node: GuestNode): Promise<TreeNode> {
    const { stat } = node;
    const guest = attributesOf(stat);
    const mtimeMs = nsToMs(stat.mtimeNs);
    switch (stat.type) {
      case 'dir':
        return { kind: 'dir', mtimeMs, guest };
      case 'symlink':
        return { kind: 'symlink', target: escapeTarget(await node.fs.readlink(node.id)), mtimeMs, guest };
      case 'file': {
        return {
          kind: 'file',
          size: stat.size,
          mtimeMs,
          guest,
          // The volume is opened only when the file is: getattr of every file in a walk must stay cheap.
          open: async () =>
            new GuestFileReader(
              node.fs,
              node.id,
              stat.size,
              (await node.volume.open()).blockSize,
              `${node.volume.label}/${node.path.join('/')}`,
            ),
        };
      }
      default:
        // Devices, fifos and sockets show as empty files: a device node on this mount must never open a host device.
        this.log.debug({ path: node.path.join('/'), type: stat.type }, 'special file shown as an empty file');
        return { kind: 'file', size: 0, mtimeMs, guest, open: async () => new BufferReader(Buffer.alloc(0)) };
    }
  }
}

/** Directories whose volumes show as `NAME.raw` images beside `NAME/`: a point, a disk, an LVM volume group. */
function holdsImages(node: NamespaceNode): boolean {
  return node.kind === 'point' || (node.kind === 'volume' && node.volume.kind === 'disk') || (node.kind === 'lvm' && node.vg !== undefined);
}

function attributesOf(stat: GuestStat): GuestAttributes {
  return { permissions: stat.mode & 0o7777, nlink: stat.nlink, atimeMs: nsToMs(stat.atimeNs), ctimeMs: nsToMs(stat.ctimeNs) };
}

/** A guest symlink's target with each component escaped as the tree names them, so relative links resolve inside the tree. */
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

export function splitPath(path: string): string[] {
  return path.split('/').filter((p) => p !== '');
}
