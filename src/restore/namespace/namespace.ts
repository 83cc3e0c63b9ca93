import type { Catalog, PointInfo } from '../../core/catalog.js';
import { CairnError, isCairnError } from '../../core/errors.js';
import { isValidName } from '../../url/cairn-url.js';
import { escapeGuestName, unescapeGuestName } from '../../url/guest-name.js';
import type { GuestNode, NamespaceEntry, NamespaceNode, Volume } from './nodes.js';
import { PointView, type VolumeContent } from './point-view.js';

export const LATEST = 'latest';
export const CONFIG_NAME = 'config';
export const LVM_SEGMENT = 'lvm';
/** Symlinks followed while resolving one path inside a guest (the kernel's limit). */
const MAX_SYMLINK_HOPS = 40;
/** Restore points whose volumes and filesystems stay open (each filesystem keeps its metadata cache). */
const OPEN_POINTS = 4;

export interface ResolveOptions {
  /** Follow a symlink in the last segment too (cat, restore), not only in the middle (ls, stat). */
  followLast?: boolean;
}

export interface NamespaceOptions {
  /** Metadata cache of each opened guest filesystem (default 32 MiB). */
  metadataCacheBytes?: number;
  warn?: (message: string, context: Record<string, unknown>) => void;
}

function notFound(path: readonly string[], why?: string): CairnError {
  const name = path.join('/');
  return new CairnError('ERR_NOT_FOUND', why ? `${name}: ${why}` : `no such entry: ${name}`, { path: name });
}

/**
 * The one resolver of Cairn's names (docs/namespace.md): maps `VM/POINT/DISK[/VOLUME][/PATH]` to a
 * node — VM, point, `latest`, configuration, volume (disk, partition, LV), LVM directory, or a guest
 * directory, file or symlink — and lists what is under a node. FUSE, pseudo-URLs, NBD export names
 * and the CLI all go through it. Points are looked up in the catalog on every call (new points show
 * at once); what is under a point is discovered once per point and kept for a few points.
 */
export class Namespace {
  private readonly views = new Map<string, PointView>();
  private readonly metadataCacheBytes: number;
  private readonly warn: (message: string, context: Record<string, unknown>) => void;

  constructor(
    readonly catalog: Catalog,
    options: NamespaceOptions = {},
  ) {
    this.metadataCacheBytes = options.metadataCacheBytes ?? 32 * 1024 * 1024;
    this.warn = options.warn ?? (() => undefined);
  }

  /** The view of one point, shared by every path into it (a small LRU of open points). */
  pointView(point: PointInfo): PointView {
    const key = `${point.vm}/${point.id}`;
    let view = this.views.get(key);
    if (view && view.point.createdMs === point.createdMs) {
      this.views.delete(key);
    } else {
      view = new PointView(this.catalog, point, { metadataCacheBytes: this.metadataCacheBytes, warn: this.warn });
    }
    this.views.set(key, view);
    while (this.views.size > OPEN_POINTS) this.views.delete(this.views.keys().next().value!);
    return view;
  }

  /**
   * Resolves path segments (as in a URL, guest names escaped). `latest` as the last segment is the
   * link itself; before more segments it stands for the newest point. Symlinks inside a guest are
   * followed when more segments come after them (absolute targets from the volume's root, as in a
   * chroot); the last segment is not followed (as lstat).
   */
  async resolve(segments: readonly string[], options: ResolveOptions = {}): Promise<NamespaceNode> {
    return this.resolveFrom({ kind: 'root' }, [], segments, options);
  }

  /**
   * Resolves `segments` below `start`, which `startPath` names (so that callers walking many
   * siblings, such as every point of a VM, resolve the common part once).
   */
  async resolveFrom(
    start: NamespaceNode,
    startPath: readonly string[],
    segments: readonly string[],
    options: ResolveOptions = {},
  ): Promise<NamespaceNode> {
    let node = start;
    const pending = [...segments];
    const walked = [...startPath];
    let hops = 0;
    while (pending.length > 0) {
      const segment = pending.shift()!;
      walked.push(segment);
      node = await this.child(node, segment, walked);
      if (node.kind === 'guest' && node.stat.type === 'symlink' && (pending.length > 0 || options.followLast)) {
        if (++hops > MAX_SYMLINK_HOPS) throw notFound(walked, 'too many levels of symbolic links');
        const target = splitGuestPath(await node.fs.readlink(node.id));
        const inside = normalize([...(target.absolute ? [] : node.path.slice(0, -1)), ...target.segments]);
        const volumePath = walked.slice(0, walked.length - node.path.length);
        pending.unshift(...inside);
        walked.length = 0;
        walked.push(...volumePath);
        // A link to the volume's root lands on the root directory, not on the volume's image.
        node = await this.rootDirectory(await this.resolve(volumePath));
      }
    }
    return node;
  }

  /** The root directory of a volume's filesystem, for a volume that holds one; any other node as it is. */
  async rootDirectory(node: NamespaceNode): Promise<NamespaceNode> {
    if (node.kind !== 'volume') return node;
    const content = await this.pointView(node.point).content(node.volume);
    if (content.kind !== 'filesystem') return node;
    const fs = content.fs;
    return { kind: 'guest', point: node.point, volume: node.volume, fs, id: fs.rootId, stat: await fs.stat(fs.rootId), path: [] };
  }

  /** One step down from `parent`; `path` (segments so far, the new one last) only names things in errors. */
  async child(parent: NamespaceNode, segment: string, path: readonly string[]): Promise<NamespaceNode> {
    switch (parent.kind) {
      case 'root': {
        if (!isValidName(segment)) throw notFound(path);
        return { kind: 'vm', vm: segment, points: await this.points(segment, path) };
      }
      case 'vm': {
        const point = segment === LATEST ? parent.points[parent.points.length - 1] : parent.points.find((p) => p.id === segment);
        if (!point) throw notFound(path, `VM '${parent.vm}' has no point '${segment}'`);
        return segment === LATEST ? { kind: 'latest', vm: parent.vm, target: point } : { kind: 'point', point };
      }
      case 'latest':
        return this.child({ kind: 'point', point: parent.target }, segment, path);
      case 'point': {
        const view = this.pointView(parent.point);
        const volume = view.diskVolume(segment);
        if (volume) return { kind: 'volume', point: parent.point, volume };
        if (segment === CONFIG_NAME && parent.point.hasConfig) {
          const blob = await this.catalog.readConfig(parent.point.vm, parent.point.id);
          if (blob) return { kind: 'config', point: parent.point, blob };
        }
        throw notFound(path, `point ${view.label} has no disk '${segment}'`);
      }
      case 'volume':
        return this.childOfVolume(parent.point, parent.volume, segment, path);
      case 'lvm':
        return this.childOfLvm(parent, segment, path);
      case 'guest': {
        if (parent.stat.type !== 'dir') throw notFound(path, `${parent.path.join('/') || '/'} is not a directory`);
        const entry = await parent.fs.lookup(parent.id, unescapeGuestName(segment));
        if (!entry) throw notFound(path);
        const name = escapeGuestName(entry.name);
        return { ...parent, id: entry.id, stat: await parent.fs.stat(entry.id), path: [...parent.path, name] };
      }
      case 'config':
        throw notFound(path);
    }
  }

  private async points(vm: string, path: readonly string[]): Promise<PointInfo[]> {
    try {
      return await this.catalog.listPoints(vm);
    } catch (err) {
      // The catalog's own message says it best ("VM 'x' has no restore points"); only the path is added.
      if (isCairnError(err, 'ERR_NOT_FOUND')) err.context.path ??= path.join('/');
      throw err;
    }
  }

  private async childOfVolume(point: PointInfo, volume: Volume, segment: string, path: readonly string[]): Promise<NamespaceNode> {
    const view = this.pointView(point);
    const content = await view.content(volume);
    if (volume.kind === 'disk' && segment === LVM_SEGMENT && content.kind !== 'filesystem') {
      if ((await view.volumeGroupsOn(volume.disk)).length > 0) return { kind: 'lvm', point, disk: volume.disk };
    }
    switch (content.kind) {
      case 'partitioned': {
        const partition = content.partitions.find((p) => p.segments[0] === segment);
        if (partition) return { kind: 'volume', point, volume: partition };
        const names = content.partitions.map((p) => p.segments[0]).join(', ') || 'none';
        throw notFound(
          path,
          `partition ${segment} not found (${volume.label} has a ${content.table.kind.toUpperCase()} table; partitions: ${names})`,
        );
      }
      case 'raw':
        throw content.reason;
      case 'lvm-pv':
        throw notFound(
          path,
          `${volume.label} is an LVM physical volume: its logical volumes are under ${point.vm}/${point.id}/${volume.disk}/lvm/`,
        );
      case 'filesystem': {
        const fs = content.fs;
        const root: GuestNode = { kind: 'guest', point, volume, fs, id: fs.rootId, stat: await fs.stat(fs.rootId), path: [] };
        return this.child(root, segment, path);
      }
    }
  }

  private async childOfLvm(
    parent: Extract<NamespaceNode, { kind: 'lvm' }>,
    segment: string,
    path: readonly string[],
  ): Promise<NamespaceNode> {
    const view = this.pointView(parent.point);
    const groups = await view.volumeGroupsOn(parent.disk);
    if (parent.vg === undefined) {
      if (!groups.some((vg) => vg.name === segment)) {
        throw notFound(
          path,
          `no volume group '${segment}' on ${view.label}/${parent.disk} (found: ${groups.map((vg) => vg.name).join(', ') || 'none'})`,
        );
      }
      return { kind: 'lvm', point: parent.point, disk: parent.disk, vg: segment };
    }
    try {
      return { kind: 'volume', point: parent.point, volume: await view.logicalVolume(parent.disk, parent.vg, segment) };
    } catch (err) {
      if (isCairnError(err, 'ERR_NOT_FOUND')) throw notFound(path, err.message);
      throw err;
    }
  }

  /** What is under a node, in a stable order; ERR_NOT_FOUND-free for leaves (they have none). */
  async *list(node: NamespaceNode): AsyncIterable<NamespaceEntry> {
    switch (node.kind) {
      case 'root':
        for (const vm of await this.catalog.listVms()) yield { name: vm, resolve: () => this.resolve([vm]) };
        return;
      case 'vm':
        for (const point of node.points) yield { name: point.id, resolve: async () => ({ kind: 'point', point }) };
        if (node.points.length > 0) {
          const target = node.points[node.points.length - 1]!;
          yield { name: LATEST, resolve: async () => ({ kind: 'latest', vm: node.vm, target }) };
        }
        return;
      case 'latest':
        yield* this.list({ kind: 'point', point: node.target });
        return;
      case 'point': {
        const view = this.pointView(node.point);
        for (const disk of node.point.disks) {
          const volume = view.diskVolume(disk.name)!;
          yield { name: disk.name, resolve: async () => ({ kind: 'volume', point: node.point, volume }) };
        }
        if (node.point.hasConfig && !view.diskVolume(CONFIG_NAME)) {
          yield { name: CONFIG_NAME, resolve: () => this.resolve([node.point.vm, node.point.id, CONFIG_NAME]) };
        }
        return;
      }
      case 'volume':
        yield* this.listVolume(node.point, node.volume);
        return;
      case 'lvm': {
        const groups = await this.pointView(node.point).volumeGroupsOn(node.disk);
        if (node.vg === undefined) {
          for (const vg of groups) yield { name: vg.name, resolve: async () => ({ ...node, vg: vg.name }) };
          return;
        }
        const vgName = node.vg;
        for (const lv of groups.find((vg) => vg.name === vgName)?.logicalVolumes ?? []) {
          yield {
            name: lv.name,
            resolve: () => this.child(node, lv.name, [node.point.vm, node.point.id, node.disk, LVM_SEGMENT, vgName, lv.name]),
          };
        }
        return;
      }
      case 'guest':
        if (node.stat.type !== 'dir') return;
        yield* this.listGuestDir(node);
        return;
      case 'config':
        return;
    }
  }

  /** The content of a volume (undefined while it is only a raw image), for callers that show both. */
  async volumeContent(point: PointInfo, volume: Volume): Promise<VolumeContent> {
    return this.pointView(point).content(volume);
  }

  private async *listVolume(point: PointInfo, volume: Volume): AsyncIterable<NamespaceEntry> {
    const view = this.pointView(point);
    const content = await view.content(volume);
    const lvm = async function* (): AsyncIterable<NamespaceEntry> {
      if (volume.kind === 'disk' && (await view.volumeGroupsOn(volume.disk)).length > 0) {
        yield { name: LVM_SEGMENT, resolve: async () => ({ kind: 'lvm', point, disk: volume.disk }) };
      }
    };
    if (content.kind === 'partitioned') {
      for (const partition of content.partitions) {
        yield { name: partition.segments[0]!, resolve: async () => ({ kind: 'volume', point, volume: partition }) };
      }
      yield* lvm();
      return;
    }
    if (content.kind === 'lvm-pv') {
      yield* lvm();
      return;
    }
    if (content.kind === 'raw') throw content.reason;
    const fs = content.fs;
    yield* this.listGuestDir({ kind: 'guest', point, volume, fs, id: fs.rootId, stat: await fs.stat(fs.rootId), path: [] });
  }

  private async *listGuestDir(dir: GuestNode): AsyncIterable<NamespaceEntry> {
    for await (const entry of dir.fs.readdir(dir.id)) {
      const name = escapeGuestName(entry.name);
      yield {
        name,
        resolve: async (): Promise<GuestNode> => ({ ...dir, id: entry.id, stat: await dir.fs.stat(entry.id), path: [...dir.path, name] }),
      };
    }
  }
}

/** A guest symlink target split into segments (escaped), and whether it is absolute. */
function splitGuestPath(target: Buffer): { absolute: boolean; segments: string[] } {
  const absolute = target[0] === 0x2f;
  const segments: string[] = [];
  let start = 0;
  for (let i = 0; i <= target.length; i++) {
    if (i === target.length || target[i] === 0x2f) {
      if (i > start) segments.push(escapeGuestName(target.subarray(start, i)));
      start = i + 1;
    }
  }
  return { absolute, segments };
}

/** Removes '.' and resolves '..' lexically, never above the root. */
function normalize(segments: readonly string[]): string[] {
  const out: string[] = [];
  for (const segment of segments) {
    if (segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return out;
}
