import type { CommandModule } from 'yargs';
import { Repository } from '../../store/repository.js';
import { DEFAULT_CHUNK_SIZE } from '../../store/repository-config.js';
import { resolveGroup } from '../../store/repository-access.js';
import { formatBytes, MiB } from '../../util/bytes.js';
import { sizeOption } from '../options.js';
import { printResult, resolveRepoPath, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';

interface InitArgs extends RepoArgs, JsonArgs {
  /** Bytes (sizeOption). */
  'chunk-size': number;
  'shared-group'?: string;
}

export const initCommand: CommandModule<object, InitArgs> = {
  command: 'init',
  describe: 'create a new, empty repository',
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs))
      .option(
        'chunk-size',
        sizeOption('chunk-size', {
          default: `${DEFAULT_CHUNK_SIZE / MiB}MiB`,
          min: 1,
          describe: 'fixed chunk size, a power of two from 64KiB to 8MiB',
        }),
      )
      .option('shared-group', {
        type: 'string',
        describe: 'let this group (name or GID) read the repository; without it only its owner can',
      }) as never,
  handler: async (argv) => {
    const root = resolveRepoPath(argv);
    const group = argv['shared-group'];
    const access = group !== undefined ? ({ mode: 'group', ...(await resolveGroup(group)) } as const) : ({ mode: 'private' } as const);
    const repo = await Repository.init(root, argv['chunk-size'], access);
    printResult(argv, { repo: root, id: repo.config.id, chunkSize: repo.chunkSize, access }, () => [
      `created repository ${root} (chunk size ${formatBytes(repo.chunkSize)}, ${group !== undefined ? `readable by group ${group}` : 'private to its owner'})`,
    ]);
  },
};
