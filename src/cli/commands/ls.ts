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

interface LsArgs extends RepoArgs, JsonArgs {
  url?: string;
}

const time = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

export const lsCommand: CommandModule<object, LsArgs> = {
  command: 'ls [url]',
  describe: 'list VMs, the points of a VM (cairn://VM) or the disks of a point (cairn://VM/POINT)',
  builder: (yargs) => withJsonOption(withRepoOption(yargs)).positional('url', { type: 'string', describe: 'cairn://VM[/POINT]' }) as never,
  handler: async (argv) => {
    const url = argv.url !== undefined ? parseCairnUrl(argv.url) : {};
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
