import { readFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { CairnError } from '../../core/errors.js';
import type { ChangedBlocks } from '../../core/changed-blocks.js';
import { parseChangedBlockBitmap, XEN_CBT_BLOCK_SIZE } from '../../formats/cbt-bitmap.js';
import { runBackup, type BackupDisk } from '../../ingest/backup.js';
import { openSource } from '../../ingest/open-source.js';
import { childLogger } from '../../log/index.js';
import { assertValidName } from '../../url/cairn-url.js';
import { formatBytes, parseSize } from '../../util/bytes.js';
import { openRepoFromArgs, printResult, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';
import { ProgressBar } from '../progress.js';
import { withInterruption } from '../interrupt.js';

interface BackupArgs extends RepoArgs, JsonArgs {
  vm: string;
  disk: string[];
  config?: string;
  base?: string;
  'changed-blocks'?: string[];
  'block-size': string;
}

/** Splits `NAME=VALUE` as --disk and --changed-blocks take it. */
export function splitAssignment(text: string, option: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0 || at === text.length - 1) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `--${option} expects NAME=VALUE, got '${text}'`);
  }
  const name = text.slice(0, at);
  assertValidName('disk', name);
  return [name, text.slice(at + 1)];
}

async function readBitmaps(specs: string[], blockSize: number): Promise<Map<string, ChangedBlocks>> {
  const bitmaps = new Map<string, ChangedBlocks>();
  for (const spec of specs) {
    const [name, file] = splitAssignment(spec, 'changed-blocks');
    const content = await readFile(file).catch((err: unknown) => {
      throw new CairnError('ERR_INVALID_ARGUMENT', `cannot read changed-block bitmap ${file}: ${(err as Error).message}`, { file });
    });
    bitmaps.set(name, parseChangedBlockBitmap(content, blockSize));
  }
  return bitmaps;
}

export const backupCommand: CommandModule<object, BackupArgs> = {
  command: 'backup',
  describe: 'back up one or more disks of a VM into a new restore point',
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs))
      .option('vm', { type: 'string', demandOption: true, describe: 'VM name' })
      .option('disk', { type: 'string', array: true, demandOption: true, describe: 'NAME=SOURCE: a file, a block device, - (stdin) or an nbd:// URI; repeatable' })
      .option('config', { type: 'string', describe: 'VM configuration file to store with the point' })
      .option('base', { type: 'string', describe: 'incremental: latest or a point id to take unchanged data from' })
      .option('changed-blocks', { type: 'string', array: true, describe: 'NAME=FILE: changed-block bitmap (base64 or raw, as Xen CBT gives it); needs --base' })
      .option('block-size', { type: 'string', default: '64KiB', describe: 'block size of one bitmap bit' })
      .example('$0 backup --vm web --disk sda=/dev/vg/web-snap', 'full backup of a block device')
      .example('$0 backup --vm web --disk sda=web.raw --base latest --changed-blocks sda=cbt.b64', 'incremental with a Xen CBT bitmap') as never,
  handler: async (argv) => {
    const log = childLogger('backup', { vm: argv.vm });
    const repo = await openRepoFromArgs(argv);
    const blockSize = parseSize(argv['block-size'], 'block size');
    const bitmaps = await readBitmaps(argv['changed-blocks'] ?? [], blockSize || XEN_CBT_BLOCK_SIZE);
    if (bitmaps.size > 0 && argv.base === undefined) {
      throw new CairnError('ERR_INVALID_ARGUMENT', '--changed-blocks needs --base (latest or a point id) to take the unchanged blocks from');
    }
    const config = argv.config !== undefined ? await readFile(argv.config) : undefined;
    const disks: BackupDisk[] = [];
    try {
      for (const spec of argv.disk) {
        const [name, sourceSpec] = splitAssignment(spec, 'disk');
        const changedBlocks = bitmaps.get(name);
        disks.push({ name, source: await openSource(sourceSpec, { stdin: process.stdin }), ...(changedBlocks ? { changedBlocks } : {}) });
      }
      for (const name of bitmaps.keys()) {
        if (!disks.some((d) => d.name === name)) throw new CairnError('ERR_INVALID_ARGUMENT', `--changed-blocks names disk '${name}' that no --disk gives`);
      }
      const bars = new Map<string, ProgressBar>();
      const result = await withInterruption((signal) =>
        runBackup({
          repo,
          vm: argv.vm,
          disks,
          ...(argv.base !== undefined ? { base: argv.base } : {}),
          ...(config ? { config } : {}),
          logger: log,
          signal,
          onProgress: ({ disk, bytesDone, bytesTotal }) => {
            let bar = bars.get(disk);
            if (!bar) {
              for (const other of bars.values()) other.finish();
              bar = new ProgressBar(`backup ${disk}`, bytesTotal);
              bars.set(disk, bar);
            }
            bar.update(bytesDone, bytesTotal);
          },
        }),
      );
      for (const bar of bars.values()) bar.finish();
      printResult(
        argv,
        {
          vm: result.vm,
          point: result.point,
          ...(result.parent ? { parent: result.parent } : {}),
          disks: result.disks.map((d) => ({
            name: d.name,
            size: d.size,
            bytesRead: d.bytesRead,
            bytesStored: d.bytesStored,
            chunksWritten: d.chunksWritten,
            chunksReused: d.chunksReused,
          })),
        },
        () => [
          `created point cairn://${result.vm}/${result.point}${result.parent ? ` (incremental from ${result.parent})` : ''}`,
          ...result.disks.map(
            (d) => `  ${d.name}: ${formatBytes(d.size)}, read ${formatBytes(d.bytesRead)}, stored ${formatBytes(d.bytesStored)} in ${d.chunksWritten} new chunks (${d.chunksReused} reused)`,
          ),
        ],
      );
    } finally {
      for (const disk of disks) await disk.source.close().catch(() => undefined);
    }
  },
};
