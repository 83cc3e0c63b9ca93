import { stat as fsStat } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { parseCairnUrl, requireDiskUrl } from '../../url/cairn-url.js';
import { formatBytes } from '../../util/bytes.js';
import { isHoleSlot, referencedDigests } from '../../store/disk-index.js';
import { diskJson, isoTime } from '../json-shapes.js';
import { statBelowDisk } from '../stat-guest.js';
import { openCatalogFromArgs, printResult, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';

interface StatArgs extends RepoArgs, JsonArgs {
  url: string;
}

export const statCommand: CommandModule<object, StatArgs> = {
  command: 'stat <url>',
  describe:
    'show size, stored bytes, chunk count and parent of a disk (cairn://VM/POINT/DISK); of a volume or a file inside a guest (cairn://VM/POINT/DISK/VOLUME/PATH) its type, size, mode, owner and times',
  builder: (yargs) => withJsonOption(withRepoOption(yargs)).positional('url', { type: 'string', demandOption: true }) as never,
  handler: async (argv) => {
    const catalog = await openCatalogFromArgs(argv);
    const url = requireDiskUrl(parseCairnUrl(argv.url), argv.url);
    if (url.rest !== undefined) {
      await statBelowDisk(argv, catalog, [url.vm, url.point, url.disk, ...url.rest]);
      return;
    }
    const { manifest, index } = await catalog.diskIndex(url.vm, url.point, url.disk);
    const distinct = referencedDigests(index);
    let storedBytes = 0;
    for (const digest of distinct) {
      storedBytes += (await fsStat(catalog.repo.chunks.chunkPath(digest)).catch(() => ({ size: 0 }))).size;
    }
    let dataChunks = 0;
    for (let i = 0; i < index.digests.length; i++) if (!isHoleSlot(index, i)) dataChunks++;
    const info = {
      ...diskJson(url.vm, manifest.id, { name: url.disk, size: index.diskSize }),
      chunkSize: index.chunkSize,
      chunks: index.digests.length,
      dataChunks,
      holeChunks: index.digests.length - dataChunks,
      patchedChunks: index.patches?.size ?? 0,
      distinctChunks: distinct.size,
      storedBytes,
      created: isoTime(manifest.createdMs),
      parent: manifest.parent ?? null,
      source: manifest.source,
      origin: manifest.disks.find((d) => d.name === url.disk)?.origin ?? null,
    };
    const origin = info.origin;
    printResult(argv, info, () => [
      `${info.url}`,
      `  size:     ${formatBytes(info.size)} (${info.size} bytes)`,
      `  chunks:   ${info.chunks} of ${formatBytes(info.chunkSize)}: ${info.dataChunks} data (${info.patchedChunks} patched), ${info.holeChunks} holes, ${info.distinctChunks} distinct`,
      `  stored:   ${formatBytes(info.storedBytes)} (shared chunks counted in full)`,
      `  created:  ${info.created}`,
      `  parent:   ${info.parent ?? '-'}`,
      `  source:   ${info.source}`,
      ...(origin
        ? [
            `  format:   ${origin.description}`,
            ...(origin.parent !== undefined ? [`  backing:  ${origin.parent}`] : []),
            ...(origin.parentLocators ?? []).map((locator) => `  locator:  ${locator}`),
            ...(origin.fromSnap !== undefined || origin.toSnap !== undefined
              ? [`  snapshots: from ${origin.fromSnap ?? '(image start)'} to ${origin.toSnap ?? '(image head)'}`]
              : []),
          ]
        : []),
    ]);
  },
};
