import type { CommandModule } from 'yargs';
import { CairnError } from '../../core/errors.js';
import { parseCairnUrl } from '../../url/cairn-url.js';
import { openRepoFromArgs, printResult, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';

interface RmArgs extends RepoArgs, JsonArgs {
  url: string;
  force: boolean;
}

export const rmCommand: CommandModule<object, RmArgs> = {
  command: 'rm <url>',
  describe: "remove a restore point (cairn://VM/POINT) or, with --force, all of a VM's points (cairn://VM); run gc to free space",
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs))
      .positional('url', { type: 'string', demandOption: true })
      .option('force', { type: 'boolean', default: false, describe: 'needed to remove a whole VM' }) as never,
  handler: async (argv) => {
    const repo = await openRepoFromArgs(argv);
    const url = parseCairnUrl(argv.url);
    if (url.vm === undefined) throw new CairnError('ERR_INVALID_ARGUMENT', `'${argv.url}' names no VM`);
    if (url.disk !== undefined) throw new CairnError('ERR_INVALID_ARGUMENT', 'points are removed whole: give cairn://VM/POINT, not a disk');
    if (url.point === undefined) {
      if (!argv.force) {
        const count = (await repo.listPointIds(url.vm)).length;
        throw new CairnError('ERR_INVALID_ARGUMENT', `this would remove all ${count} point(s) of VM '${url.vm}'; add --force to confirm`);
      }
      const removed = await repo.removeVm(url.vm);
      printResult(argv, { vm: url.vm, removedPoints: removed }, () => [
        `removed VM ${url.vm} (${removed} point(s)); run 'cairn gc' to free space`,
      ]);
      return;
    }
    const id = await repo.resolvePoint(url.vm, url.point);
    await repo.removePoint(url.vm, id);
    printResult(argv, { vm: url.vm, point: id }, () => [`removed cairn://${url.vm}/${id}; run 'cairn gc' to free space`]);
  },
};
