import { readFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { CairnError } from '../../core/errors.js';
import type { ChangedBlocks } from '../../core/changed-blocks.js';
import { assertBitmapFits, parseChangedBlockBitmap } from '../../formats/cbt-bitmap.js';
import { runBackup, type BackupDisk } from '../../ingest/backup.js';
import { FileSource } from '../../ingest/file-source.js';
import { openSource } from '../../ingest/open-source.js';
import { BITMAP_MODES, type BitmapMode } from '../../ingest/bitmap-mode.js';
import type { NbdSourceOptions } from '../../ingest/nbd-source.js';
import { isNbdUri } from '../../formats/nbd-uri.js';
import { IMAGE_FORMATS, type ImageFormat } from '../../formats/image-format.js';
import type { Argv } from 'yargs';
import { childLogger } from '../../log/index.js';
import { assertValidName } from '../../url/cairn-url.js';
import { formatBytes } from '../../util/bytes.js';
import { openRepoFromArgs, printResult, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';
import { numberOption, sizeOption } from '../options.js';
import { diskJson } from '../json-shapes.js';
import { ProgressBar } from '../progress.js';
import { withInterruption } from '../interrupt.js';

interface BackupArgs extends RepoArgs, JsonArgs, NbdArgs {
  vm: string;
  disk: string[];
  config?: string;
  base?: string;
  'changed-blocks'?: string[];
  /** Bytes (sizeOption). */
  'block-size': number;
  format?: string[];
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

/** Reads a file an option names; a missing or unreadable one is a usage error naming the option's file. */
async function readArgumentFile(file: string, what: string): Promise<Buffer> {
  return readFile(file).catch((err: unknown) => {
    throw new CairnError('ERR_INVALID_ARGUMENT', `cannot read ${what} ${file}: ${(err as Error).message}`, { file });
  });
}

async function readBitmaps(specs: string[], blockSize: number): Promise<Map<string, ChangedBlocks>> {
  const bitmaps = new Map<string, ChangedBlocks>();
  for (const spec of specs) {
    const [name, file] = splitAssignment(spec, 'changed-blocks');
    const content = await readArgumentFile(file, 'changed-block bitmap');
    try {
      bitmaps.set(name, parseChangedBlockBitmap(content, blockSize));
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
      throw new CairnError(err.code, `--changed-blocks ${spec}: ${err.message}`, { ...err.context, file }, { cause: err });
    }
  }
  return bitmaps;
}

// ---------------------------------------------------------------------------------------------
// NBD pull options (nbd:// and nbd+unix:// disks). --bitmap and --bitmap-mode take NAME or
// DISK=NAME (per disk, as libvirt names bitmaps backup-vda, backup-vdb…).
interface NbdArgs {
  bitmap?: string[];
  'bitmap-mode'?: string[];
  'discard-after-read'?: boolean;
  connections: number;
  /** Bytes per second (sizeOption). */
  bwlimit?: number;
  'nbd-timeout': number;
  'nbd-connect-timeout': number;
}

function withNbdOptions<T>(yargs: Argv<T>): Argv<T & NbdArgs> {
  return yargs
    .option('bitmap', { type: 'string', array: true, describe: 'NBD: incremental from dirty bitmap qemu:dirty-bitmap:NAME ([DISK=]NAME)' })
    .option('bitmap-mode', {
      type: 'string',
      array: true,
      describe: 'NBD: new (full read), reuse (incremental) or none, as the Proxmox API hands it ([DISK=]MODE)',
    })
    .option('discard-after-read', { type: 'boolean', describe: 'NBD: TRIM each range once stored, so the fleecing image shrinks' })
    .option(
      'connections',
      numberOption('connections', {
        integer: true,
        min: 1,
        max: 16,
        default: 4,
        describe: 'NBD: connections per disk when the server allows multi-conn',
      }),
    )
    .option('bwlimit', sizeOption('bwlimit', { min: 1, describe: 'NBD: read bandwidth limit per disk, e.g. 100MiB (per second)' }))
    .option(
      'nbd-timeout',
      numberOption('nbd-timeout', { above: 0, default: 60, describe: 'NBD: seconds without a reply before the server counts as stalled' }),
    )
    .option(
      'nbd-connect-timeout',
      numberOption('nbd-connect-timeout', { above: 0, default: 30, describe: 'NBD: seconds to connect and finish the handshake' }),
    )
    .example(
      '$0 backup --vm web --disk vda=nbd+unix:///vda?socket=/run/backup.sock --bitmap backup-vda',
      'incremental pull from a QEMU fleecing export',
    ) as never;
}

/** `NAME` for every disk, or `DISK=NAME` for one: the value for `disk`, if any. */
function perDisk(values: string[] | undefined, disk: string, option: string): string | undefined {
  let shared: string | undefined;
  let own: string | undefined;
  for (const value of values ?? []) {
    const at = value.indexOf('=');
    if (at < 0) shared = value;
    else if (splitAssignment(value, option)[0] === disk) own = value.slice(at + 1);
  }
  return own ?? shared;
}

function nbdSourceOptions(argv: NbdArgs, disk: string): Omit<NbdSourceOptions, 'uri'> {
  const bitmap = perDisk(argv.bitmap, disk, 'bitmap');
  const mode = perDisk(argv['bitmap-mode'], disk, 'bitmap-mode');
  if (mode !== undefined && !(BITMAP_MODES as readonly string[]).includes(mode)) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `--bitmap-mode must be new, reuse or none, got '${mode}'`);
  }
  // The numbers are checked while parsing (numberOption, sizeOption).
  const bwlimit = argv.bwlimit;
  return {
    ...(bitmap !== undefined ? { bitmap } : {}),
    ...(mode !== undefined ? { bitmapMode: mode as BitmapMode } : {}),
    discardAfterRead: argv['discard-after-read'] === true,
    connections: argv.connections,
    ...(bwlimit ? { bwlimitBytesPerSec: bwlimit } : {}),
    requestTimeoutMs: argv['nbd-timeout'] * 1000,
    connectTimeoutMs: argv['nbd-connect-timeout'] * 1000,
  };
}

/** An incremental NBD pull takes unchanged data from the latest point unless --base says otherwise. */
function nbdWantsBase(argv: NbdArgs, disks: Array<[string, string]>): boolean {
  return disks.some(([name, spec]) => {
    if (!isNbdUri(spec) || perDisk(argv.bitmap, name, 'bitmap') === undefined) return false;
    const mode = perDisk(argv['bitmap-mode'], name, 'bitmap-mode');
    return mode === undefined || mode === 'reuse';
  });
}
// ---------------------------------------------------------------------------------------------

export const backupCommand: CommandModule<object, BackupArgs> = {
  command: 'backup',
  describe: 'back up one or more disks of a VM into a new restore point',
  builder: (yargs) =>
    withNbdOptions(withJsonOption(withRepoOption(yargs)))
      .option('vm', { type: 'string', demandOption: true, describe: 'VM name' })
      .option('disk', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: 'NAME=SOURCE: a file (raw, qcow2, VHD, rbd diff or export), a block device, - (stdin) or an nbd:// URI; repeatable',
      })
      .option('config', { type: 'string', describe: 'VM configuration file to store with the point' })
      .option('base', { type: 'string', describe: 'incremental: latest or a point id to take unchanged data from' })
      .option('changed-blocks', {
        type: 'string',
        array: true,
        describe: 'NAME=FILE: changed-block bitmap (base64 or raw, as Xen CBT gives it); needs --base',
      })
      .option('block-size', sizeOption('block-size', { default: '64KiB', min: 512, describe: 'block size of one bitmap bit' }))
      .option('format', {
        type: 'string',
        array: true,
        describe: `source format, detected by its magic when absent: ${IMAGE_FORMATS.join(', ')} ([DISK=]FORMAT)`,
      })
      .example('$0 backup --vm web --disk sda=/dev/vg/web-snap', 'full backup of a block device')
      .example(
        '$0 backup --vm web --disk vda=disk.0.1 --base latest',
        'incremental from a qcow2 overlay whose backing file is the last image',
      )
      .example('rbd export-diff --from-snap s1 rbd/web@s2 - | $0 backup --vm web --disk vda=-', 'an rbd diff onto the point made up to s1')
      .example('$0 backup --vm web --disk sda=web.raw --base latest --changed-blocks sda=cbt.b64', 'incremental with a Xen CBT bitmap')
      .epilog(
        'Exit codes: 4 a backup of this VM (or a gc) is already running; 6 the repository filesystem is full; 7 the source failed (unreadable, truncated, NBD error or stall); 130 interrupted. No point becomes visible unless the backup completes.',
      ) as never,
  handler: async (argv) => {
    const log = childLogger('backup', { vm: argv.vm });
    const repo = await openRepoFromArgs(argv);
    const bitmaps = await readBitmaps(argv['changed-blocks'] ?? [], argv['block-size']);
    if (bitmaps.size > 0 && argv.base === undefined) {
      throw new CairnError(
        'ERR_INVALID_ARGUMENT',
        '--changed-blocks needs --base (latest or a point id) to take the unchanged blocks from',
      );
    }
    const config = argv.config !== undefined ? await readArgumentFile(argv.config, 'VM configuration') : undefined;
    const diskSpecs = argv.disk.map((spec) => splitAssignment(spec, 'disk'));
    const base = argv.base ?? (nbdWantsBase(argv, diskSpecs) ? 'latest' : undefined);
    const disks: BackupDisk[] = [];
    try {
      for (const spec of argv.disk) {
        const [name, sourceSpec] = splitAssignment(spec, 'disk');
        const changedBlocks = bitmaps.get(name);
        const nbd = isNbdUri(sourceSpec) ? nbdSourceOptions(argv, name) : undefined;
        const format = perDisk(argv.format, name, 'format');
        if (format !== undefined && !(IMAGE_FORMATS as readonly string[]).includes(format)) {
          throw new CairnError('ERR_INVALID_ARGUMENT', `--format must be one of ${IMAGE_FORMATS.join(', ')}, got '${format}'`);
        }
        const source = await openSource(sourceSpec, {
          stdin: process.stdin,
          ...(nbd ? { nbd } : {}),
          ...(format !== undefined ? { format: format as ImageFormat } : {}),
        });
        disks.push({ name, source, ...(changedBlocks ? { changedBlocks } : {}) });
        // stdin has no size up front: its bitmap cannot be measured against the disk.
        if (changedBlocks && source.size !== undefined) assertBitmapFits(changedBlocks, source.size, name);
        if (nbd?.discardAfterRead && !source.wantsAcknowledgement) {
          log.warn(
            { disk: name },
            `--discard-after-read: the NBD export of disk '${name}' does not accept TRIM; nothing will be discarded`,
          );
        }
        if (source instanceof FileSource && source.imageFormat) {
          log.warn(
            { disk: name, format: source.imageFormat },
            `${sourceSpec} looks like a ${source.imageFormat} image, not a raw disk: it is backed up byte for byte as given (--format raw, or a block device); without --format a file's disk is read from inside it`,
          );
        }
      }
      for (const name of bitmaps.keys()) {
        if (!disks.some((d) => d.name === name))
          throw new CairnError('ERR_INVALID_ARGUMENT', `--changed-blocks names disk '${name}' that no --disk gives`);
      }
      const bars = new Map<string, ProgressBar>();
      const result = await withInterruption((signal) =>
        runBackup({
          repo,
          vm: argv.vm,
          disks,
          ...(base !== undefined ? { base } : {}),
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
          url: `cairn://${result.vm}/${result.point}`,
          parent: result.parent ?? null,
          disks: result.disks.map((d) => ({
            ...diskJson(result.vm, result.point, d),
            bytesRead: d.bytesRead,
            bytesStored: d.bytesStored,
            chunksWritten: d.chunksWritten,
            chunksReused: d.chunksReused,
          })),
        },
        () => [
          `created point cairn://${result.vm}/${result.point}${result.parent ? ` (incremental from ${result.parent})` : ''}`,
          ...result.disks.map(
            (d) =>
              `  ${d.name}: ${formatBytes(d.size)}, read ${formatBytes(d.bytesRead)}, stored ${formatBytes(d.bytesStored)} in ${d.chunksWritten} new chunks (${d.chunksReused} reused)`,
          ),
        ],
      );
    } finally {
      for (const disk of disks) await disk.source.close().catch(() => undefined);
    }
  },
};
