import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { existsSync } from 'node:fs';
import { Repository } from '../store/repository.js';
import { CONFIG_FILE, DEFAULT_CHUNK_SIZE } from '../store/repository-config.js';
import { childLogger } from '../log/index.js';
import type { CatalogOptions, RepositoryCatalog } from '../restore/catalog.js';

export interface RepoArgs {
  repo?: string;
}

export interface JsonArgs {
  json?: boolean;
}

/** `--repo`, else CAIRN_REPO, else $XDG_DATA_HOME/cairn (~/.local/share/cairn). */
export function resolveRepoPath(argv: RepoArgs): string {
  if (argv.repo) return argv.repo;
  if (process.env.CAIRN_REPO) return process.env.CAIRN_REPO;
  const dataHome = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(dataHome, 'cairn');
}

export function withRepoOption<T>(yargs: Argv<T>): Argv<T & RepoArgs> {
  return yargs.option('repo', {
    type: 'string',
    describe: 'repository directory (default: $CAIRN_REPO, else $XDG_DATA_HOME/cairn)',
  }) as Argv<T & RepoArgs>;
}

export function withJsonOption<T>(yargs: Argv<T>): Argv<T & JsonArgs> {
  return yargs.option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' }) as Argv<T & JsonArgs>;
}

export interface OpenOptions {
  /** Create the default repository ($XDG_DATA_HOME/cairn) when it does not exist yet (`npm start`). */
  createDefault?: boolean;
}

export async function openRepoFromArgs(argv: RepoArgs, options: OpenOptions = {}): Promise<Repository> {
  const root = resolveRepoPath(argv);
  const isDefault = !argv.repo && !process.env.CAIRN_REPO;
  if (options.createDefault && isDefault && !existsSync(join(root, CONFIG_FILE))) {
    const repo = await Repository.init(root, DEFAULT_CHUNK_SIZE);
    childLogger('cli').info({ repo: root }, `created the default repository ${root}`);
    return repo;
  }
  return Repository.open(root);
}

/** Loads the catalog (and its cache, lru-cache) only for the commands that read points: not `backup`. */
export async function openCatalogFromArgs(argv: RepoArgs, options: CatalogOptions & OpenOptions = {}): Promise<RepositoryCatalog> {
  const [{ RepositoryCatalog }, repo] = await Promise.all([import('../restore/catalog.js'), openRepoFromArgs(argv, options)]);
  return new RepositoryCatalog(repo, options);
}

/** Prints a result: JSON on --json, otherwise the human-readable lines. */
export function printResult(argv: JsonArgs, json: unknown, lines: () => string[]): void {
  if (argv.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
  else for (const line of lines()) process.stdout.write(line + '\n');
}
