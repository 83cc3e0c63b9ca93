import type { Readable } from 'node:stream';
import { CairnError } from '../core/errors.js';
import { FileSource } from './file-source.js';
import { StreamSource } from './stream-source.js';
import type { DiskSource } from './disk-source.js';
import { isNbdUri } from '../formats/nbd-uri.js';
import type { NbdSourceOptions } from './nbd-source.js';

export interface SourceOptions {
  /** Standard input, for the `-` source. */
  stdin?: Readable;
  /** Options for nbd:// and nbd+unix:// sources (bitmap, discard, connections, limits). */
  nbd?: Omit<NbdSourceOptions, 'uri'>;
}

/**
 * Opens the source named on the command line: `-` (stdin), a file or a block device.
 * Network sources (nbd://, nbd+unix://) are dispatched here too.
 */
export async function openSource(spec: string, options: SourceOptions = {}): Promise<DiskSource> {
  if (spec === '-') {
    if (!options.stdin) throw new CairnError('ERR_INVALID_ARGUMENT', "source '-' (standard input) is not available here");
    return new StreamSource(options.stdin, 'standard input');
  }
  // --- network sources (NBD): see src/ingest/nbd-source.ts ---
  // Loaded only for NBD: the client and protocol modules are a third of a file backup's start-up imports.
  if (isNbdUri(spec)) return (await import('./nbd-source.js')).NbdSource.open({ uri: spec, ...options.nbd });
  // --- end of network sources ---
  return FileSource.open(spec);
}
