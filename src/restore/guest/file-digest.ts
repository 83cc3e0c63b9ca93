import { createHash } from 'node:crypto';
import type { BlockReader } from '../../core/block-reader.js';
import type { GuestNode } from '../namespace/nodes.js';

/** Bytes read per step when a file has to be hashed. */
const PIECE = 4 * 1024 * 1024;

/**
 * A key naming a guest file's content without reading it: its size and, for every data extent, the
 * content keys of the volume ranges it is decoded from. Undefined when some extent has no volume
 * ranges (inline or resident data) or the volume cannot name its content: then only reading tells.
 */
export async function fileContentKey(node: GuestNode, volume: BlockReader): Promise<string | undefined> {
  if (!volume.contentKey) return undefined;
  const parts: string[] = [`size=${node.stat.size}`];
  for (const extent of await node.fs.extents(node.id, 0, node.stat.size)) {
    if (extent.kind === 'zero') {
      parts.push(`z${extent.offset}+${extent.length}`);
      continue;
    }
    if (!extent.volumeRanges) return undefined;
    parts.push(`d${extent.offset}+${extent.length}`);
    for (const range of extent.volumeRanges) {
      const key = await volume.contentKey(range.offset, range.length);
      if (key === undefined) return undefined;
      parts.push(key);
    }
  }
  return createHash('sha256').update(parts.join('|')).digest('hex');
}

/** SHA-256 of a guest file's bytes, read in pieces (holes are read as zeros by the filesystem). */
export async function fileSha256(node: GuestNode): Promise<string> {
  const hash = createHash('sha256');
  for (let offset = 0; offset < node.stat.size; offset += PIECE) {
    hash.update(await node.fs.read(node.id, offset, Math.min(PIECE, node.stat.size - offset)));
  }
  return hash.digest('hex');
}
