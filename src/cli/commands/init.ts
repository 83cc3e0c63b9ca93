import type { CommandModule } from 'yargs';
import { Repository } from '../../store/repository.js';
import { DEFAULT_CHUNK_SIZE } from '../../store/repository-config.js';
import { formatBytes, MiB } from '../../util/bytes.js';
import { sizeOption } from '../options.js';
import { printResult, resolveRepoPath, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';

interface InitArgs extends RepoArgs, JsonArgs {
  /** Bytes (sizeOption). */
  'chunk-size': number;
}

export const initCommand: CommandModule<object, InitArgs> = {
  command: 'init',
  describe: 'create a new, empty repository',
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs)).option(
      'chunk-size',
      sizeOption('chunk-size', {
        default: `${DEFAULT_CHUNK_SIZE / MiB}MiB`,
        min: 1,
        describe: 'fixed chunk size, a power of two from 64KiB to 8MiB',
      }),
    ) as never,
  handler: async (argv) => {
    const root = resolveRepoPath(argv);
    const repo = await Repository.init(root, argv['chunk-size']);
    printResult(argv, { repo: root, id: repo.config.id, chunkSize: repo.chunkSize }, () => [
      `created repository ${root} (chunk size ${formatBytes(repo.chunkSize)})`,
    ]);
  },
};
