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
      .option('force', { type: 'boolean', default: false, describe: 'overwrite an existing file or device' })
      .epilog(
        'A file is written under a temporary name in its directory and renamed into place once complete, so on damage (exit 5), a full disk (exit 6) or an interrupt (exit 130) the destination is left as it was (the file needs room for both meanwhile). A block device is written in place: on damage the rest is still restored and the message names the byte ranges that were not (they keep the old data). Exit 2: the destination exists (no --force) or cannot be written; exit 3: its directory does not exist.',
      ) as never,
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
