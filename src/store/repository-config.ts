import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { CairnError, systemErrorCode } from '../core/errors.js';
import { isPowerOfTwo, KiB, MiB } from '../util/bytes.js';
import { parseAccessConfig, type AccessConfig } from './repository-access.js';
import { readBeneath } from './repository-file.js';

/** The repository's `config` file (docs/formats/repository.md). */
export interface RepositoryConfig {
  format: 'cairn-repository';
  version: 1;
  id: string;
  chunkSize: number;
  createdMs: number;
  /** Who may read the repository; absent in repositories made before it existed (umask behaviour). */
  access?: AccessConfig;
}

export const CONFIG_FILE = 'config';
export const MIN_CHUNK_SIZE = 64 * KiB;
export const MAX_CHUNK_SIZE = 8 * MiB;
export const DEFAULT_CHUNK_SIZE = MiB;
/** The config is a few hundred bytes; anything much larger is not one. */
const MAX_CONFIG_BYTES = 64 * KiB;

export function validateChunkSize(chunkSize: number): void {
  if (!isPowerOfTwo(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `chunk size ${chunkSize} must be a power of two from 64 KiB to 8 MiB`, {
      chunkSize,
    });
  }
}

export function newRepositoryConfig(chunkSize: number, access: AccessConfig = { mode: 'private' }): RepositoryConfig {
  validateChunkSize(chunkSize);
  return { format: 'cairn-repository', version: 1, id: randomUUID(), chunkSize, createdMs: Date.now(), access };
}

/** One clear line for a `--repo` that is missing, not a directory, or not ours to read. */
async function checkRoot(root: string): Promise<void> {
  const hint = `(run 'cairn init --repo ${root}' first)`;
  try {
    if (!(await stat(root)).isDirectory()) {
      throw new CairnError('ERR_NOT_FOUND', `no Cairn repository at ${root}: it is not a directory`, { repo: root });
    }
  } catch (err) {
    if (err instanceof CairnError) throw err;
    const code = systemErrorCode(err);
    if (code === 'ENOENT') throw new CairnError('ERR_NOT_FOUND', `no Cairn repository at ${root} ${hint}`, { repo: root });
    if (code === 'ENOTDIR')
      throw new CairnError('ERR_NOT_FOUND', `no Cairn repository at ${root}: a parent is not a directory`, { repo: root });
    if (code === 'EACCES')
      throw new CairnError('ERR_INVALID_ARGUMENT', `cannot open the repository at ${root}: permission denied`, { repo: root });
    throw err;
  }
}

export async function readRepositoryConfig(root: string): Promise<RepositoryConfig> {
  await checkRoot(root);
  const file = join(root, CONFIG_FILE);
  let text: string;
  try {
    text = (await readBeneath(root, [CONFIG_FILE], { name: `repository config ${file}`, maxBytes: MAX_CONFIG_BYTES })).toString('utf8');
  } catch (err) {
    const code = systemErrorCode(err);
    if (code === 'ENOENT') {
      throw new CairnError('ERR_NOT_FOUND', `no Cairn repository at ${root} (run 'cairn init --repo ${root}' first)`, { file });
    }
    if (code === 'EACCES') {
      throw new CairnError('ERR_INVALID_ARGUMENT', `cannot read the repository at ${root}: permission denied`, { file }, { cause: err });
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
  const access = parseAccessConfig(parsed.access, file);
  const config = { ...parsed } as RepositoryConfig;
  if (access) config.access = access;
  return config;
}
