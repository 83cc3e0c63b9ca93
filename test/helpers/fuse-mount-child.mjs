// A `cairn mount` process for the FUSE lifecycle tests (SIGTERM, crash, stale mount), built from
// dist/ like bin/cairn and using the mount command's own start/stop functions. Optional third
// argument: a delay in ms added to every disk read, announced on stdout as READ lines, so a test can
// signal the process while a read is in flight.
//   node test/helpers/fuse-mount-child.mjs REPO DIR [READ_DELAY_MS]
import { openRepositoryCatalog } from '../../dist/restore/index.js';
import { startFuseMount } from '../../dist/cli/commands/mount.js';
import { nextTerminationSignal } from '../../dist/cli/interrupt.js';

const [repoPath, dir, delayArg] = process.argv.slice(2);
const delayMs = Number(delayArg ?? 0);
const catalog = await openRepositoryCatalog(repoPath);

function slowed(reader) {
  return {
    size: reader.size,
    blockSize: reader.blockSize,
    allocation: (offset, length) => reader.allocation(offset, length),
    async read(offset, length) {
      process.stdout.write(`READ ${offset}\n`);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return reader.read(offset, length);
    },
  };
}

const served =
  delayMs > 0
    ? Object.assign(Object.create(catalog), {
        openDisk: async (vm, point, disk) => slowed(await catalog.openDisk(vm, point, disk)),
      })
    : catalog;

const stop = nextTerminationSignal();
const mount = await startFuseMount(served, { dir });
process.stdout.write('MOUNTED\n');
await stop;
await mount.unmount();
process.stdout.write('UNMOUNTED\n');
