import type { CommandModule } from 'yargs';
import { repositoryUsage } from '../../store/usage.js';
import { formatBytes } from '../../util/bytes.js';
import {
  openRepoFromArgs,
  printResult,
  resolveRepoPath,
  withJsonOption,
  withRepoOption,
  type JsonArgs,
  type RepoArgs,
} from '../context.js';

export const monitorCommand: CommandModule<object, RepoArgs & JsonArgs> = {
  command: 'monitor',
  describe: 'repository totals: used, free, logical size, dedup and compression ratios',
  builder: (yargs) => withJsonOption(withRepoOption(yargs)) as never,
  handler: async (argv) => {
    const repo = await openRepoFromArgs(argv);
    const usage = await repositoryUsage(repo);
    printResult(argv, { repo: resolveRepoPath(argv), ...usage }, () => [
      `repository ${resolveRepoPath(argv)}: ${usage.vms} VM(s), ${usage.points} point(s), ${usage.disks} disk image(s)`,
      `  logical:     ${formatBytes(usage.logicalBytes)} (data ${formatBytes(usage.dataBytes)}, the rest holes)`,
      `  unique:      ${formatBytes(usage.uniqueBytes)} in ${usage.chunks} chunk file(s)`,
      `  stored:      ${formatBytes(usage.storedBytes)}`,
      `  dedup:       ${usage.dedupRatio.toFixed(2)}x   compression: ${usage.compressionRatio.toFixed(2)}x   total: ${usage.totalRatio.toFixed(2)}x`,
      `  filesystem:  ${formatBytes(usage.filesystem.usedBytes)} used, ${formatBytes(usage.filesystem.freeBytes)} free of ${formatBytes(usage.filesystem.totalBytes)}`,
    ]);
  },
};
