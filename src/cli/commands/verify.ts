import type { CommandModule } from 'yargs';
import { verifyRepository } from '../../store/verify.js';
import { parseCairnUrl } from '../../url/cairn-url.js';
import { formatBytes } from '../../util/bytes.js';
import { openRepoFromArgs, printResult, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';
import { ProgressBar } from '../progress.js';
import { ExitCode } from '../exit-codes.js';

interface VerifyArgs extends RepoArgs, JsonArgs {
  url?: string;
}

export const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify [url]',
  describe: 're-read and re-hash every chunk (of everything, a VM, a point or a disk); exit 5 naming what is damaged',
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs)).positional('url', { type: 'string', describe: 'cairn://VM[/POINT[/DISK]]' }) as never,
  handler: async (argv) => {
    const repo = await openRepoFromArgs(argv);
    const url = argv.url !== undefined ? parseCairnUrl(argv.url) : {};
    const bar = new ProgressBar('verify', undefined);
    const result = await verifyRepository(
      repo,
      { ...(url.vm ? { vm: url.vm } : {}), ...(url.point ? { point: url.point } : {}), ...(url.disk ? { disk: url.disk } : {}) },
      (done) => bar.update(done),
    );
    bar.finish();
    printResult(argv, result, () => {
      const lines: string[] = [];
      for (const point of result.damagedPoints) lines.push(`DAMAGED point ${point.vm}/${point.point}: ${point.error}`);
      for (const disk of result.disks) {
        if (disk.ok) continue;
        if (disk.error) lines.push(`DAMAGED ${disk.vm}/${disk.point}/${disk.disk}: ${disk.error}`);
        for (const chunk of disk.damaged) {
          lines.push(
            `DAMAGED ${disk.vm}/${disk.point}/${disk.disk}: chunk ${chunk.digest} at offset(s) ${chunk.offsets.join(', ')}: ${chunk.error}`,
          );
        }
      }
      const damagedDisks = result.disks.filter((d) => !d.ok).length;
      lines.push(
        `${result.ok ? 'OK' : 'FAILED'}: ${result.disks.length} disk(s) checked, ${result.chunksChecked} chunk(s), ${formatBytes(result.bytesChecked)}; ${damagedDisks} damaged disk(s), ${result.damagedPoints.length} damaged point(s)`,
      );
      return lines;
    });
    if (!result.ok) process.exitCode = ExitCode.DAMAGED;
  },
};
