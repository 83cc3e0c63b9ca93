import type { CommandModule } from 'yargs';
import { childLogger } from '../../log/index.js';
import { collectGarbage, DEFAULT_GC_GRACE_MS } from '../../store/gc.js';
import { formatBytes } from '../../util/bytes.js';
import { numberOption } from '../options.js';
import { openRepoFromArgs, printResult, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';

interface GcArgs extends RepoArgs, JsonArgs {
  'dry-run': boolean;
  'grace-seconds': number;
}

export const gcCommand: CommandModule<object, GcArgs> = {
  command: 'gc',
  describe: 'delete chunks no restore point references (mark and sweep; safe while backups run)',
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs))
      .option('dry-run', { type: 'boolean', default: false, describe: 'only count what would be deleted' })
      .option(
        'grace-seconds',
        numberOption('grace-seconds', {
          min: 0,
          default: DEFAULT_GC_GRACE_MS / 1000,
          describe: 'keep chunks touched this long before the oldest running backup started',
        }),
      )
      .epilog('Exit codes: 4 another gc is running on this repository.') as never,
  handler: async (argv) => {
    const repo = await openRepoFromArgs(argv);
    const result = await collectGarbage(repo, {
      dryRun: argv['dry-run'],
      graceMs: argv['grace-seconds'] * 1000,
      logger: childLogger('gc'),
    });
    printResult(argv, { dryRun: argv['dry-run'], ...result }, () => [
      `${argv['dry-run'] ? 'would delete' : 'deleted'} ${result.removedChunks} chunk(s), ${formatBytes(result.removedBytes)}; ${result.referencedChunks} referenced, ${result.keptRecentChunks} unreferenced but recent (kept)`,
    ]);
  },
};
