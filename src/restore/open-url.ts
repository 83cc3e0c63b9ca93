import type { BlockReader } from '../core/block-reader.js';
import { CairnError } from '../core/errors.js';
import { formatCairnPath, type CairnUrl } from '../url/cairn-url.js';
import type { Namespace } from './namespace/namespace.js';
import { GuestFileReader } from './namespace/guest-file-reader.js';

export interface OpenUrlOptions {
  /** Also open regular files inside a guest filesystem (`cairn cat`), not only volumes. */
  files?: boolean;
}

/**
 * Opens what a pseudo-URL names as a BlockReader: a disk, a partition, a logical volume, or (with
 * `files`) a regular file inside a guest filesystem. Everything else is a clear error.
 */
export async function openUrlReader(namespace: Namespace, url: CairnUrl, options: OpenUrlOptions = {}): Promise<BlockReader> {
  const path = formatCairnPath(url);
  if (url.vm === undefined || url.point === undefined || url.disk === undefined) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `'${path}' does not name a disk: expected cairn://VM/POINT/DISK[/VOLUME][/PATH]`, {
      url: path,
    });
  }
  const node = await namespace.resolve([url.vm, url.point, url.disk, ...(url.rest ?? [])], { followLast: options.files === true });
  if (node.kind === 'volume') return node.volume.open();
  if (node.kind === 'guest' && options.files) {
    if (node.stat.type !== 'file') {
      throw new CairnError(
        'ERR_INVALID_ARGUMENT',
        `cairn://${path} is a ${node.stat.type === 'dir' ? 'directory' : node.stat.type}, not a file`,
        {
          url: path,
        },
      );
    }
    const volume = await node.volume.open();
    return new GuestFileReader(node.fs, node.id, node.stat.size, volume.blockSize, `${node.volume.label}/${node.path.join('/')}`);
  }
  const what = node.kind === 'guest' ? 'a file inside a guest' : node.kind;
  throw new CairnError('ERR_INVALID_ARGUMENT', `cairn://${path} is ${what}, not a disk, partition or logical volume`, { url: path });
}
