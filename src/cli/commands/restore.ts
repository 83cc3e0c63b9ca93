import type { CommandModule } from 'yargs';
import { CairnError } from '../../core/errors.js';
import { restoreToPath } from '../../restore/index.js';
import { restoreGuestTree, walkGuestTree } from '../../restore/guest/index.js';
import { Namespace, type GuestNode } from '../../restore/namespace/index.js';
import { parseCairnUrl, requireDiskUrl } from '../../url/cairn-url.js';
import { formatBytes } from '../../util/bytes.js';
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
  describe: 'restore a disk or volume to a file (sparse) or a block device, or a file or directory tree from inside a guest',
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs))
      .positional('url', {
        type: 'string',
        demandOption: true,
        describe: 'cairn://VM/POINT/DISK[/VOLUME][/PATH]; a volume with a trailing slash (…/p1/) restores its files',
      })
      .positional('dest', {
        type: 'string',
        demandOption: true,
        describe: 'file, block device, or (for a guest directory) a new directory',
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'overwrite an existing file or device, or restore into an existing directory',
      })
      .epilog(
        'A file is written under a temporary name in its directory and renamed into place once complete, so on damage (exit 5), a full disk (exit 6) or an interrupt (exit 130) the destination is left as it was (the file needs room for both meanwhile). A block device is written in place: on damage the rest is still restored and the message names the byte ranges that were not (they keep the old data). A guest tree keeps modes, times, symlinks and hard links (and owners, as root); a file whose data is damaged is left out, named, and the rest restored (exit 5). Exit 2: the destination exists (no --force) or cannot be written; exit 3: its directory does not exist.',
      ) as never,
  handler: async (argv) => {
    const catalog = await openCatalogFromArgs(argv, { cacheBytes: 32 * 1024 * 1024 });
    const url = requireDiskUrl(parseCairnUrl(argv.url), argv.url);
    const namespace = new Namespace(catalog);
    const resolved = await namespace.resolve([url.vm, url.point, url.disk, ...(url.rest ?? [])], { followLast: true });
    // `…/p1/` (a trailing slash) is the filesystem's root directory; `…/p1` the partition's image.
    const node = url.directory ? await namespace.rootDirectory(resolved) : resolved;
    if (node.kind === 'guest') {
      await restoreFromGuest(argv, namespace, node);
      return;
    }
    if (node.kind !== 'volume')
      throw new CairnError('ERR_INVALID_ARGUMENT', `${argv.url} is not a disk, volume or guest path`, { url: argv.url });
    const reader = await node.volume.open();
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

async function restoreFromGuest(argv: RestoreArgs, namespace: Namespace, node: GuestNode): Promise<void> {
  const bar = new ProgressBar('restore', undefined);
  // The total is worth a metadata pass only when a bar shows it.
  let totalBytes = 0;
  if (bar.visible) {
    for await (const { node: entry, event } of walkGuestTree(namespace, node))
      if (event === 'file' && entry.stat.type === 'file') totalBytes += entry.stat.size;
  }
  const result = await withInterruption((signal) =>
    restoreGuestTree(namespace, node, argv.dest, {
      force: argv.force,
      keepOwnership: process.getuid?.() === 0,
      totalBytes,
      progress: (done, total) => bar.update(done, total || undefined),
      signal,
    }),
  );
  bar.finish();
  const summary = { url: argv.url, dest: argv.dest, ...result };
  printResult(argv, summary, () => [
    `restored ${argv.url} to ${argv.dest}: ${result.files} file(s), ${result.directories} director${result.directories === 1 ? 'y' : 'ies'}, ${result.symlinks} symlink(s), ${result.hardLinks} hard link(s), ${formatBytes(result.bytes)}`,
    ...result.skipped.map((s) => `  not restored: ${s.path} (${s.reason})`),
  ]);
  if (result.damaged.length > 0) {
    const shown = result.damaged.slice(0, 20).map((d) => `  ${d.path}: ${d.message}`);
    const more = result.damaged.length > 20 ? [`  … and ${result.damaged.length - 20} more`] : [];
    throw new CairnError(
      'ERR_CHUNK_CORRUPT',
      `${result.damaged.length} file(s) not restored because their data is damaged (the rest is restored):\n${[...shown, ...more].join('\n')}`,
      { damaged: result.damaged.length },
    );
  }
}
