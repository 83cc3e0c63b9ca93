import type { CommandModule } from 'yargs';
import { openUrlReader, restoreToPath } from '../../restore/index.js';
import { parseCairnUrl, requireDiskUrl } from '../../url/cairn-url.js';
import { formatBytes } from '../../util/bytes.js';
import { Namespace } from '../../restore/namespace/index.js';
import { openCatalogFromArgs, printResult, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';
import { ProgressBar } from '../progress.js';
import { withInterruption } from '../interrupt.js';

interface RestoreArgs extends RepoArgs, JsonArgs {
  url: string;
  dest: string;
  force: boolean;
}

export const restoreCommand: CommandModule<object, RestoreArgs> = {
  command: 'restore <url> <dest>',
  describe: 'restore a disk or partition to a file (sparse) or a block device',
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs))
      .positional('url', { type: 'string', demandOption: true, describe: 'cairn://VM/POINT/DISK[/pN]' })
      .positional('dest', { type: 'string', demandOption: true, describe: 'file or block device' })
      .option('force', { type: 'boolean', default: false, describe: 'overwrite an existing file or device' }) as never,
  handler: async (argv) => {
    const catalog = await openCatalogFromArgs(argv, { cacheBytes: 32 * 1024 * 1024 });
    const url = requireDiskUrl(parseCairnUrl(argv.url), argv.url);
    const reader = await openUrlReader(new Namespace(catalog), url);
    const bar = new ProgressBar('restore', reader.size);
    const { blockDevice } = await withInterruption((signal) =>
      restoreToPath(reader, argv.dest, { force: argv.force, progress: (done) => bar.update(done), signal }),
    );
    bar.finish();
    printResult(argv, { url: argv.url, dest: argv.dest, size: reader.size, blockDevice }, () => [
      `restored ${argv.url} to ${argv.dest} (${formatBytes(reader.size)})`,
    ]);
  },
};
