import type { CommandModule } from 'yargs';
import { CairnError } from '../../core/errors.js';
import { copyToStream, openUrlReader } from '../../restore/index.js';
import { parseCairnUrl, requireDiskUrl } from '../../url/cairn-url.js';
import { GuestFileReader, Namespace } from '../../restore/namespace/index.js';
import { openCatalogFromArgs, withRepoOption, type RepoArgs } from '../context.js';
import { ProgressBar } from '../progress.js';
import { withInterruption } from '../interrupt.js';

interface CatArgs extends RepoArgs {
  url: string;
}

export const catCommand: CommandModule<object, CatArgs> = {
  command: 'cat <url>',
  describe: 'write a disk, a volume (pN, lvm/VG/LV) or a file inside a guest (cairn://VM/POINT/DISK/VOLUME/PATH) to standard output',
  builder: (yargs) =>
    withRepoOption(yargs)
      .positional('url', { type: 'string', demandOption: true })
      .epilog(
        'On damage cat exits 5 after writing every byte before the damaged chunk: a pipe cannot take bytes back, so whatever reads it must check the exit status (set -o pipefail), or use cairn restore, which leaves no partial file. A reader that stops early (| head) ends cat quietly with exit 0; a full disk behind > FILE is exit 6.',
      ) as never,
  handler: async (argv) => {
    const catalog = await openCatalogFromArgs(argv, { cacheBytes: 32 * 1024 * 1024 });
    const url = requireDiskUrl(parseCairnUrl(argv.url), argv.url);
    const reader = await openUrlReader(new Namespace(catalog), url, { files: true });
    // A guest's text file may go to a terminal; a disk image may not.
    if (process.stdout.isTTY && !(reader instanceof GuestFileReader))
      throw new CairnError('ERR_INVALID_ARGUMENT', 'refusing to write a disk image to a terminal; redirect standard output');
    const bar = new ProgressBar('cat', reader.size);
    await withInterruption((signal) => copyToStream(reader, process.stdout, (done) => bar.update(done), signal));
    bar.finish();
  },
};
