import { dirname, isAbsolute, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { CairnError, systemErrorCode } from '../core/errors.js';
import { detectImageFormat } from '../formats/image-format.js';
import { ImageFile } from './image-file.js';
import { RawLayer, type ChainContext, type ImageLayer } from './image-layer.js';

/** Longest backing chain followed; qemu has no hard limit, but a longer one is a loop or a mistake. */
const MAX_CHAIN_DEPTH = 64;

export type { ChainContext };

/** Opens a qcow2 or VHD image file (or a raw one) as a layer of a chain. */
export async function openImageLayer(path: string, format: 'qcow2' | 'vhd' | 'raw' | undefined, chain: ChainContext): Promise<ImageLayer> {
  const file = await ImageFile.open(path, chain.depth === 0 ? 'image' : 'backing file');
  try {
    if (chain.seen.has(file.identity)) {
      throw new CairnError('ERR_FORMAT_INVALID', `backing chain loops: ${path} is already part of it`, { file: path });
    }
    if (chain.depth > MAX_CHAIN_DEPTH)
      throw new CairnError('ERR_FORMAT_INVALID', `backing chain is deeper than ${MAX_CHAIN_DEPTH} images at ${path}`);
    const next: ChainContext = { ...chain, seen: new Set([...chain.seen, file.identity]), depth: chain.depth + 1 };
    const head = await file.read(0, Math.min(file.size, 512), 'image header');
    const tail = file.size >= 512 ? await file.read(file.size - 512, 512, 'image footer') : Buffer.alloc(0);
    const kind = format ?? detectImageFormat(head, tail) ?? 'raw';
    if (kind === 'qcow2') return await (await import('./qcow2-layer.js')).Qcow2Layer.open(file, next);
    if (kind === 'vhd') return await (await import('./vhd-layer.js')).VhdLayer.open(file, next);
    if (kind === 'raw') return new RawLayer(file);
    throw new CairnError('ERR_UNSUPPORTED', `${path}: a ${kind} image cannot be part of a backing chain`, { file: path });
  } catch (err) {
    await file.close();
    throw err;
  }
}

/** The backing-format names qemu writes (the qcow2 backing format extension) that Cairn reads. */
const BACKING_FORMATS: Record<string, 'qcow2' | 'vhd' | 'raw'> = { qcow2: 'qcow2', raw: 'raw', vpc: 'vhd' };

/**
 * Opens the image a layer names as its backing file or parent: a relative name is taken relative to
 * the naming image's directory, as qemu does. Protocol names (nbd:, json:, rbd:…) cannot be opened.
 */
export async function openBackingLayer(
  childPath: string,
  name: string,
  format: string | undefined,
  chain: ChainContext,
): Promise<ImageLayer> {
  if (/^[a-z][a-z0-9+.-]*:/i.test(name) && !name.startsWith('file:')) {
    throw new CairnError(
      'ERR_UNSUPPORTED',
      `${childPath}: its backing file '${name}' is not a local file; give --base latest to take the unallocated parts from the latest point`,
      { file: childPath },
    );
  }
  const plain = name.startsWith('file:') ? name.slice('file:'.length) : name;
  const path = isAbsolute(plain) ? plain : resolve(dirname(childPath), plain);
  const kind = format === undefined ? undefined : BACKING_FORMATS[format];
  if (format !== undefined && kind === undefined) {
    throw new CairnError('ERR_UNSUPPORTED', `${childPath}: backing file format '${format}' is not one Cairn reads (qcow2, raw, vpc)`, {
      file: childPath,
    });
  }
  const exists = await stat(path).then(
    () => true,
    (err: unknown) => systemErrorCode(err) !== 'ENOENT',
  );
  if (!exists) {
    throw new CairnError(
      'ERR_SOURCE',
      `${childPath}: its backing file ${path} does not exist; make it available to read the whole chain, or give --base latest to take the unallocated parts from the latest point`,
      { file: childPath },
    );
  }
  return openImageLayer(path, kind, chain);
}

/** The context of the image named on the command line. */
export const TOP_OF_CHAIN: ChainContext = { seen: new Set(), depth: 0, openBacking: openBackingLayer };
