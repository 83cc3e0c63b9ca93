import { Readable } from 'node:stream';
import { stat } from 'node:fs/promises';
import { CairnError } from '../core/errors.js';
import { FileSource } from './file-source.js';
import { StreamSource } from './stream-source.js';
import type { DiskSource } from './disk-source.js';
import { isNbdUri } from '../formats/nbd-uri.js';
import { detectImageFormat, DETECT_HEAD_LENGTH, type DetectedFormat, type ImageFormat } from '../formats/image-format.js';
import type { NbdSourceOptions } from './nbd-source.js';
import { ByteStream } from './byte-stream.js';
import { ImageFile } from './image-file.js';

export interface SourceOptions {
  /** Standard input, for the `-` source. */
  stdin?: Readable;
  /** Options for nbd:// and nbd+unix:// sources (bitmap, discard, connections, limits). */
  nbd?: Omit<NbdSourceOptions, 'uri'>;
  /** The source's format; detected from its magic numbers when absent. */
  format?: ImageFormat;
}

/** Formats that are recognised only to be refused by name. */
function refuseUnreadable(format: 'vhdx' | 'vmdk', where: string): never {
  throw new CairnError(
    'ERR_UNSUPPORTED',
    `${where} is a ${format.toUpperCase()} image, which Cairn does not read: convert it first (qemu-img convert -O qcow2), or give --format raw to keep its bytes as they are`,
  );
}

async function openStdin(stdin: Readable, format: ImageFormat | undefined): Promise<DiskSource> {
  const stream = new ByteStream(stdin, 'standard input');
  const detected = format ?? detectImageFormat(await stream.peek(DETECT_HEAD_LENGTH)) ?? 'raw';
  if (detected === 'vhdx' || detected === 'vmdk') refuseUnreadable(detected, 'standard input');
  if (detected === 'rbd-diff' || detected === 'rbd-export') return (await import('./rbd-source.js')).openRbdStream(stream, detected);
  if (detected !== 'raw') {
    throw new CairnError(
      'ERR_UNSUPPORTED',
      `standard input holds a ${detected} image, which needs random access (its tables point anywhere in the file): give the file itself as the source`,
    );
  }
  // The raw stream goes on from the bytes already looked at.
  return new StreamSource(Readable.from(stream.rest()), 'standard input');
}

async function openFile(path: string, format: ImageFormat | undefined): Promise<DiskSource> {
  let kind: ImageFormat | DetectedFormat | undefined = format;
  if (kind === undefined) {
    // Only regular files are looked into: a block device is a disk, whatever its first bytes say.
    const info = await stat(path).catch(() => undefined);
    if (info?.isFile()) {
      const file = await ImageFile.open(path, 'source');
      try {
        const head = await file.read(0, Math.min(file.size, DETECT_HEAD_LENGTH), 'image header');
        const tail = file.size >= 512 ? await file.read(file.size - 512, 512, 'image footer') : undefined;
        kind = detectImageFormat(head, tail);
      } finally {
        await file.close();
      }
    }
  }
  if (kind === undefined || kind === 'raw') return FileSource.open(path);
  if (kind === 'vhdx' || kind === 'vmdk') refuseUnreadable(kind, path);
  if (kind === 'rbd-diff' || kind === 'rbd-export') return (await import('./rbd-source.js')).openRbdFile(path, kind);
  const { openImageLayer, TOP_OF_CHAIN } = await import('./image-chain.js');
  const { ImageSource } = await import('./image-source.js');
  const top = await openImageLayer(path, kind, TOP_OF_CHAIN);
  return new ImageSource(top, top.origin!);
}

/**
 * Opens the source named on the command line: `-` (stdin), a file or a block device. Image files
 * (qcow2, VHD, rbd diffs and exports) are recognised by their magic numbers unless `format` says.
 * Network sources (nbd://, nbd+unix://) are dispatched here too.
 */
export async function openSource(spec: string, options: SourceOptions = {}): Promise<DiskSource> {
  if (spec === '-') {
    if (!options.stdin) throw new CairnError('ERR_INVALID_ARGUMENT', "source '-' (standard input) is not available here");
    return openStdin(options.stdin, options.format);
  }
  // --- network sources (NBD): see src/ingest/nbd-source.ts ---
  // Loaded only for NBD: the client and protocol modules are a third of a file backup's start-up imports.
  if (isNbdUri(spec)) {
    if (options.format !== undefined && options.format !== 'raw') {
      throw new CairnError(
        'ERR_INVALID_ARGUMENT',
        `--format ${options.format} does not apply to an NBD export (it serves the disk itself)`,
      );
    }
    return (await import('./nbd-source.js')).NbdSource.open({ uri: spec, ...options.nbd });
  }
  // --- end of network sources ---
  return openFile(spec, options.format);
}
