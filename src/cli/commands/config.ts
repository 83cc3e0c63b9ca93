import type { CommandModule } from 'yargs';
import { CairnError } from '../../core/errors.js';
import { parseCairnUrl } from '../../url/cairn-url.js';
import { openCatalogFromArgs, withRepoOption, type RepoArgs } from '../context.js';

interface ConfigArgs extends RepoArgs {
  url: string;
}

export const configCommand: CommandModule<object, ConfigArgs> = {
  command: 'config <url>',
  describe: 'write the VM configuration stored with a point (cairn://VM/POINT) to standard output',
  builder: (yargs) => withRepoOption(yargs).positional('url', { type: 'string', demandOption: true }) as never,
  handler: async (argv) => {
    const url = parseCairnUrl(argv.url);
    if (url.vm === undefined || url.point === undefined) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `'${argv.url}' does not name a point: expected cairn://VM/POINT`);
    }
    const catalog = await openCatalogFromArgs(argv);
    const blob = await catalog.readConfig(url.vm, url.point);
    if (!blob) throw new CairnError('ERR_NOT_FOUND', `point ${url.vm}/${url.point} has no VM configuration`);
    process.stdout.write(blob);
  },
};
