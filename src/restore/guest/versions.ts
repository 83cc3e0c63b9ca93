import type { GuestNodeType } from '../../core/guest-filesystem.js';
import { CairnError, isCairnError } from '../../core/errors.js';
import type { Namespace } from '../namespace/namespace.js';
import type { NamespaceNode } from '../namespace/nodes.js';
import { fileContentKey, fileSha256 } from './file-digest.js';

/** One run of consecutive points in which the file is the same (or equally absent). */
export interface FileVersion {
  /** Point ids, oldest first, that hold this version. */
  points: string[];
  /** Absent from these points (or not reachable: the message says why). */
  absent?: string;
  type?: GuestNodeType;
  size?: number;
  mtimeNs?: bigint;
  /** SHA-256 of the content (regular files). */
  sha256?: string;
}

export interface VersionsProgress {
  (pointsDone: number, pointsTotal: number): void;
}

/**
 * The versions of one guest file over every point of a VM: `VM/*\/DISK/VOLUME/PATH`. Consecutive
 * points with the same content (and type) are collapsed into one version. Content is named from the
 * chunk digests under the file's extents wherever the filesystem can say where they are, so a file
 * that did not change is never read; a file is read (and hashed) once per distinct layout.
 */
export async function fileVersions(
  namespace: Namespace,
  vm: string,
  pathAfterPoint: readonly string[],
  progress?: VersionsProgress,
): Promise<FileVersion[]> {
  const points = await namespace.catalog.listPoints(vm);
  const vmNode: NamespaceNode = { kind: 'vm', vm, points };
  const digestByKey = new Map<string, string>();
  const versions: FileVersion[] = [];
  let done = 0;
  for (const point of points) {
    const found = await describeIn(namespace, vmNode, [vm], [point.id, ...pathAfterPoint], digestByKey);
    const previous = versions[versions.length - 1];
    if (previous && sameVersion(previous, found)) previous.points.push(point.id);
    else versions.push({ points: [point.id], ...found });
    progress?.(++done, points.length);
  }
  return versions;
}

type Description = Omit<FileVersion, 'points'>;

async function describeIn(
  namespace: Namespace,
  vmNode: NamespaceNode,
  vmPath: string[],
  below: string[],
  digestByKey: Map<string, string>,
): Promise<Description> {
  const segments = [...vmPath, ...below];
  let node;
  try {
    node = await namespace.resolveFrom(vmNode, vmPath, below);
  } catch (err) {
    if (isCairnError(err, 'ERR_NOT_FOUND')) return { absent: err.message };
    throw err;
  }
  if (node.kind !== 'guest') {
    throw new CairnError('ERR_INVALID_ARGUMENT', `${segments.join('/')} is not a file inside a guest filesystem`, {
      path: segments.join('/'),
    });
  }
  const { stat } = node;
  const base: Description = { type: stat.type, size: stat.size, mtimeNs: stat.mtimeNs };
  if (stat.type !== 'file') return base;
  const key = await fileContentKey(node, await node.volume.open());
  let sha256 = key !== undefined ? digestByKey.get(key) : undefined;
  if (sha256 === undefined) {
    sha256 = await fileSha256(node);
    if (key !== undefined) digestByKey.set(key, sha256);
  }
  return { ...base, sha256 };
}

function sameVersion(a: Description, b: Description): boolean {
  if (a.absent !== undefined || b.absent !== undefined) return a.absent !== undefined && b.absent !== undefined;
  return a.type === b.type && a.size === b.size && a.sha256 === b.sha256;
}
