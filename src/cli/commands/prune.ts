import type { CommandModule } from 'yargs';
import { selectPrune, type KeepOptions } from '../../store/prune.js';
import { numberOption } from '../options.js';
import { openRepoFromArgs, printResult, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';

interface PruneArgs extends RepoArgs, JsonArgs {
  vm?: string;
  'keep-last'?: number;
  'keep-hourly'?: number;
  'keep-daily'?: number;
  'keep-weekly'?: number;
  'keep-monthly'?: number;
  'keep-yearly'?: number;
  'dry-run': boolean;
}

const RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

export const pruneCommand: CommandModule<object, PruneArgs> = {
  command: 'prune [vm]',
  describe: 'remove restore points that no --keep-* rule keeps (as Proxmox Backup Server and restic do); then run gc',
  builder: (yargs) => {
    let y = withJsonOption(withRepoOption(yargs)).positional('vm', { type: 'string', describe: 'only this VM (default: every VM)' });
    for (const rule of RULES)
      y = y.option(
        `keep-${rule}`,
        numberOption(`keep-${rule}`, {
          integer: true,
          min: 0,
          describe:
            rule === 'last'
              ? 'keep the N newest points'
              : `keep the newest point of each of the last N ${rule === 'daily' ? 'days' : rule.replace('ly', 's')}`,
        }),
      );
    return y
      .option('dry-run', { type: 'boolean', default: false, describe: 'only show what would be removed' })
      .epilog(
        'Exit codes: 2 no --keep-* option above 0 (prune never removes every point), or a value that is not a whole number.',
      ) as never;
  },
  handler: async (argv) => {
    const repo = await openRepoFromArgs(argv);
    const keep: KeepOptions = {};
    for (const rule of RULES) {
      const value = argv[`keep-${rule}`];
      if (value !== undefined) keep[rule] = value;
    }
    const vms = argv.vm !== undefined ? [argv.vm] : await repo.listVms();
    const report: { vm: string; point: string; keep: boolean; reasons: string[] }[] = [];
    for (const vm of vms) {
      const points = [];
      for (const id of await repo.listPointIds(vm)) points.push(await repo.readManifest(vm, id));
      const decisions = selectPrune(points, keep);
      for (const decision of decisions) {
        if (!decision.keep && !argv['dry-run']) await repo.removePoint(vm, decision.point.id);
        report.push({ vm, point: decision.point.id, keep: decision.keep, reasons: decision.reasons });
      }
    }
    const removed = report.filter((r) => !r.keep).length;
    printResult(argv, { dryRun: argv['dry-run'], points: report }, () => [
      ...report.map(
        (r) =>
          `${r.keep ? 'keep  ' : argv['dry-run'] ? 'would remove' : 'remove'} ${r.vm}/${r.point}${r.keep ? ` (${r.reasons.join(', ')})` : ''}`,
      ),
      `${argv['dry-run'] ? 'would remove' : 'removed'} ${removed} point(s), kept ${report.length - removed}${removed > 0 && !argv['dry-run'] ? "; run 'cairn gc' to free space" : ''}`,
    ]);
  },
};
