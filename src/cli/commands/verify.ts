import type { CommandModule } from 'yargs';
import { CairnError, isCairnError } from '../../core/errors.js';
import { chunkUses } from '../../store/disk-index.js';
import type { PointFilter } from '../../store/point-walk.js';
import type { Repository } from '../../store/repository.js';
import { verifyRepository } from '../../store/verify.js';
import { parseCairnUrl } from '../../url/cairn-url.js';
import { formatBytes } from '../../util/bytes.js';
import { openRepoFromArgs, printResult, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';
import { ProgressBar } from '../progress.js';
import { ExitCode } from '../exit-codes.js';

interface VerifyArgs extends RepoArgs, JsonArgs {
  url?: string;
}

/**
 * What the URL names, checked before anything is verified: a misspelled VM, point or disk is
 * ERR_NOT_FOUND (exit 3), never "OK: 0 disk(s) checked". `latest` is resolved here, once.
 */
async function resolveFilter(repo: Repository, text: string | undefined): Promise<PointFilter> {
  if (text === undefined) return {};
  const url = parseCairnUrl(text);
  if (url.vm === undefined) return {};
  if (url.partition !== undefined || url.path !== undefined) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `verify checks whole disks: give cairn://VM[/POINT[/DISK]], not '${text}'`);
  }
  // Throws ERR_NOT_FOUND for a VM without points, and for a point it does not have.
  const point = await repo.resolvePoint(url.vm, url.point ?? 'latest');
  if (url.point === undefined) return { vm: url.vm };
  if (url.disk === undefined) return { vm: url.vm, point };
  const manifest = await repo.readManifest(url.vm, point).catch((err: unknown) => {
    // A damaged manifest is verify's to report (exit 5); only a missing one is a wrong name.
    if (isCairnError(err, 'ERR_NOT_FOUND')) throw err;
    return undefined;
  });
  if (manifest && !manifest.disks.some((d) => d.name === url.disk)) {
    throw new CairnError(
      'ERR_NOT_FOUND',
      `point '${url.vm}/${point}' has no disk '${url.disk}' (it has ${manifest.disks.map((d) => d.name).join(', ') || 'none'})`,
      { vm: url.vm, point, disk: url.disk },
    );
  }
  return { vm: url.vm, point, disk: url.disk };
}

/**
 * The distinct chunks verify will read, for the progress bar's total and ETA: a walk over the
 * indexes only (32 bytes per chunk), skipping what cannot be read (verify reports that).
 */
async function countDistinctChunks(repo: Repository, filter: PointFilter): Promise<number> {
  const digests = new Set<string>();
  const vms = filter.vm !== undefined ? [filter.vm] : await repo.listVms();
  for (const vm of vms) {
    const ids = filter.point !== undefined ? [filter.point] : await repo.listPointIds(vm);
    for (const id of ids) {
      const manifest = await repo.readManifest(vm, id).catch(() => undefined);
      for (const entry of manifest?.disks ?? []) {
        if (filter.disk !== undefined && entry.name !== filter.disk) continue;
        const index = await repo.readDiskIndex(manifest!, entry.name).catch(() => undefined);
        if (index) for (const { digest } of chunkUses(index)) digests.add(digest);
      }
    }
  }
  return digests.size;
}

export const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify [url]',
  describe: 're-read and re-hash every chunk (of everything, a VM, a point or a disk); exit 5 naming what is damaged',
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs))
      .positional('url', { type: 'string', describe: 'cairn://VM[/POINT[/DISK]]' })
      .epilog(
        'Exit codes: 0 everything read back intact; 5 damage found (each damaged point, disk and chunk is named); 3 the VM, point or disk does not exist.',
      ) as never,
  handler: async (argv) => {
    const repo = await openRepoFromArgs(argv);
    const filter = await resolveFilter(repo, argv.url);
    const bar = new ProgressBar('verify', undefined, process.stderr, undefined, { kind: 'count', name: 'chunks' });
    // Counting costs an index walk: only for a bar someone sees.
    if (bar.visible) bar.update(0, await countDistinctChunks(repo, filter));
    let chunksChecked = 0;
    const result = await verifyRepository(repo, filter, () => bar.update(++chunksChecked));
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
