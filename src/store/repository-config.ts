import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { CairnError, systemErrorCode } from '../core/errors.js';
import { isPowerOfTwo, KiB, MiB } from '../util/bytes.js';

/** The repository's `config` file (docs/formats/repository.md). */
export interface RepositoryConfig {
  format: 'cairn-repository';
  version: 1;
  id: string;
  chunkSize: number;
  createdMs: number;
}

export const CONFIG_FILE = 'config';
export const MIN_CHUNK_SIZE = 64 * KiB;
export const MAX_CHUNK_SIZE = 8 * MiB;
export const DEFAULT_CHUNK_SIZE = MiB;

export function validateChunkSize(chunkSize: number): void {
  if (!isPowerOfTwo(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `chunk size ${chunkSize} must be a power of two from 64 KiB to 8 MiB`, {
      chunkSize,
    });
  }
}

export function newRepositoryConfig(chunkSize: number): RepositoryConfig {
  validateChunkSize(chunkSize);
  return { format: 'cairn-repository', version: 1, id: randomUUID(), chunkSize, createdMs: Date.now() };
}

export async function readRepositoryConfig(root: string): Promise<RepositoryConfig> {
  const file = join(root, CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (systemErrorCode(err) === 'ENOENT') {
      throw new CairnError('ERR_NOT_FOUND', `no Cairn repository at ${root} (run 'cairn init --repo ${root}' first)`, { file });
    }
    throw err;
  }
  let parsed: Partial<RepositoryConfig>;
  try {
    parsed = JSON.parse(text) as Partial<RepositoryConfig>;
  } catch (err) {
    throw new CairnError('ERR_FORMAT_INVALID', `repository config ${file} is not valid JSON`, { file }, { cause: err });
  }
  if (parsed.format !== 'cairn-repository') {
    throw new CairnError('ERR_FORMAT_INVALID', `${file} is not a Cairn repository config`, { file });
  }
  if (parsed.version !== 1) {
    throw new CairnError('ERR_FORMAT_INVALID', `repository format version ${String(parsed.version)} is not supported by this Cairn`, {
      file,
    });
  }
  validateChunkSize(Number(parsed.chunkSize));
  return parsed as RepositoryConfig;
}
