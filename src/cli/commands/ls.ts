import type { CommandModule } from 'yargs';
import { parseCairnUrl } from '../../url/cairn-url.js';
import { formatBytes } from '../../util/bytes.js';
import {
  openCatalogFromArgs,
  openRepoFromArgs,
  printResult,
  withJsonOption,
  withRepoOption,
  type JsonArgs,
  type RepoArgs,
} from '../context.js';
import { pointJson, vmJson, type VmJson } from '../json-shapes.js';
import { Namespace } from '../../restore/namespace/index.js';
import { listUnder, listingEntry, listingLine, type ListingJson } from '../namespace-listing.js';
import { JsonArrayWriter, writeOut } from '../output.js';

interface LsArgs extends RepoArgs, JsonArgs {
  url?: string;
  long: boolean;
  recursive: boolean;
}

const time = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

export const lsCommand: CommandModule<object, LsArgs> = {
  command: 'ls [url]',
  describe:
    "list VMs, a VM's points, a point's disks, what a disk holds (partitions, LVM, a filesystem) or a directory inside a guest filesystem",
  builder: (yargs) =>
    withJsonOption(withRepoOption(yargs))
      .positional('url', { type: 'string', describe: 'cairn://VM[/POINT[/DISK[/VOLUME][/PATH]]]' })
      .option('long', {
        alias: 'l',
        type: 'boolean',
        default: false,
        describe: 'type, mode, owner, size, mtime and link target of each entry',
      })
      .option('recursive', { alias: 'R', type: 'boolean', default: false, describe: 'list everything below, depth-first' })
      .example('$0 ls -l cairn://web/latest/sda/p1/etc/nginx', 'a directory inside the guest')
      .example('$0 ls cairn://web/latest/sda', "the disk's partitions and LVM volume groups") as never,
  handler: async (argv) => {
    const url = argv.url !== undefined ? parseCairnUrl(argv.url) : {};
    if (url.disk !== undefined) {
      await listBelowDisk(argv, [url.vm!, url.point!, url.disk, ...(url.rest ?? [])]);
      return;
    }
    if (url.vm === undefined) {
      // Counting points takes directory listings only: no manifest reads, and no catalog to load.
      const repo = await openRepoFromArgs(argv);
      const vms: VmJson[] = [];
      for (const vm of await repo.listVms()) vms.push(vmJson(vm, await repo.listPointIds(vm)));
      printResult(argv, vms, () => (vms.length === 0 ? ['(no VMs)'] : vms.map((v) => `${v.vm}\t${v.points} point(s)\tlatest ${v.latest}`)));
      return;
    }
    const catalog = await openCatalogFromArgs(argv);
    const vm = url.vm;
    if (url.point === undefined) {
      const points = await catalog.listPoints(vm);
      printResult(argv, points.map(pointJson), () =>
        points.map(
          (p) =>
            `${p.id}\t${time(p.createdMs)}\t${p.disks.map((d) => `${d.name}:${formatBytes(d.size)}`).join(' ')}${p.parent ? `\tparent ${p.parent}` : ''}`,
        ),
      );
      return;
    }
    const point = await catalog.getPoint(vm, url.point);
    printResult(argv, pointJson(point), () => [
      `point ${vm}/${point.id} created ${time(point.createdMs)}${point.parent ? `, parent ${point.parent}` : ''}${point.hasConfig ? ', with VM configuration' : ''}`,
      ...point.disks.map((d) => `${d.name}\t${formatBytes(d.size)}\tcairn://${vm}/${point.id}/${d.name}`),
    ]);
  },
};

/** `ls` of a disk, a volume or a path inside a guest: one line (or JSON element) per entry, streamed. */
async function listBelowDisk(argv: LsArgs, segments: string[]): Promise<void> {
  const namespace = new Namespace(await openCatalogFromArgs(argv));
  const node = await namespace.resolve(segments);
  // URLs in the output name the point by its id, so they stay valid after newer points.
  if ('point' in node && typeof node.point === 'object') segments[1] = node.point.id;
  // A file (or symlink) lists as itself, as ls does.
  const single = node.kind === 'guest' && node.stat.type !== 'dir' ? await listingEntry(namespace, node, segments) : undefined;
  const json = argv.json ? new JsonArrayWriter() : undefined;
  const entries = single ? one(single) : listUnder(namespace, node, segments, argv.recursive);
  for await (const [path, entry] of entries) {
    if (json) await json.add(entry);
    else await writeOut(listingLine(entry, argv.long, argv.recursive ? path : entry.name) + '\n');
  }
  await json?.end();
}

async function* one(entry: ListingJson): AsyncGenerator<[string, ListingJson]> {
  yield [entry.name, entry];
}
