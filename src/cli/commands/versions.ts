import type { CommandModule } from 'yargs';
import { CairnError } from '../../core/errors.js';
import { Namespace } from '../../restore/namespace/index.js';
import { fileVersions } from '../../restore/guest/versions.js';
import { POINT_WILDCARD, parseCairnUrl } from '../../url/cairn-url.js';
import { formatBytes } from '../../util/bytes.js';
import { isoFromNs } from '../guest-format.js';
import { openCatalogFromArgs, printResult, withJsonOption, withRepoOption, type JsonArgs, type RepoArgs } from '../context.js';
import { ProgressBar } from '../progress.js';

interface VersionsArgs extends RepoArgs, JsonArgs {
  url: string;
}

export const versionsCommand: CommandModule<object, VersionsArgs> = {
  command: 'versions <url>',
  describe:
    'show one guest file in every point (cairn://VM/*/DISK/VOLUME/PATH): point, size, mtime and content digest, identical versions collapsed',
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs)).positional('url', {
      type: 'string',
      demandOption: true,
      describe: "cairn://VM/*/DISK/p1/etc/nginx/nginx.conf (quote the '*' from the shell)",
    }) as never,
  handler: async (argv) => {
    const url = parseCairnUrl(argv.url, { allowPointWildcard: true });
    if (url.vm === undefined || url.point !== POINT_WILDCARD || url.disk === undefined || !url.rest?.length) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `'${argv.url}' must name a file in every point: cairn://VM/*/DISK/VOLUME/PATH`, {
        url: argv.url,
      });
    }
    const catalog = await openCatalogFromArgs(argv, { cacheBytes: 64 * 1024 * 1024 });
    const namespace = new Namespace(catalog);
    const bar = new ProgressBar('versions', undefined);
    const versions = await fileVersions(namespace, url.vm, [url.disk, ...url.rest], (done, total) => bar.update(done, total));
    bar.finish();
    const json = versions.map((v) => ({
      points: v.points,
      first: v.points[0],
      last: v.points[v.points.length - 1],
      ...(v.absent !== undefined
        ? { absent: true, reason: v.absent }
        : { type: v.type, size: v.size, mtime: v.mtimeNs !== undefined ? isoFromNs(v.mtimeNs) : undefined, sha256: v.sha256 ?? null }),
    }));
    printResult(argv, json, () =>
      json.map((v) => {
        const span = v.points.length === 1 ? v.first! : `${v.first}..${v.last} (${v.points.length} points)`;
        if ('absent' in v) return `${span}\tabsent`;
        return `${span}\t${v.type}\t${formatBytes(v.size ?? 0)}\t${v.mtime}\t${v.sha256 ? v.sha256.slice(0, 16) : '-'}`;
      }),
    );
  },
};
