import type { CommandModule } from 'yargs';
import { nextTerminationSignal } from '../interrupt.js';
import type { Catalog } from '../../core/catalog.js';
import { mountCatalog, type FuseMount } from '../../fuse/index.js';
import { childLogger } from '../../log/index.js';
import { openCatalogFromArgs, withRepoOption, type RepoArgs } from '../context.js';

interface MountArgs extends RepoArgs {
  dir: string;
  allowOther: boolean;
  cacheMib: number;
}

export interface FuseMountRequest {
  dir: string;
  allowOther?: boolean;
  /** The repository's chunk size, reported as the preferred I/O size. */
  blockSize?: number;
}

/** Mounts the catalog's restore points at `dir`; `serve --mount` uses this beside the NBD server. */
export async function startFuseMount(catalog: Catalog, request: FuseMountRequest): Promise<FuseMount> {
  return mountCatalog(catalog, request.dir, {
    allowOther: request.allowOther ?? false,
    ...(request.blockSize !== undefined ? { blockSize: request.blockSize } : {}),
    log: childLogger('fuse', { dir: request.dir }),
  });
}

export const mountCommand: CommandModule<object, MountArgs> = {
  command: 'mount <dir>',
  describe: 'mount every restore point read-only at DIR (FUSE), in the foreground until SIGINT/SIGTERM or an unmount',
  builder: (yargs) =>
    withRepoOption(yargs)
      .positional('dir', { type: 'string', demandOption: true, describe: 'mount point (created if missing)' })
      .option('allow-other', {
        type: 'boolean',
        default: false,
        describe: "let other users see the tree (the files' owner/group modes still apply)",
      })
      .option('cache-mib', { type: 'number', default: 256, describe: 'memory for decompressed chunks, in MiB' }) as never,
  handler: async (argv) => {
    const catalog = await openCatalogFromArgs(argv, { cacheBytes: Math.max(16, argv.cacheMib) * 1024 * 1024 });
    // Listen before mounting so a signal during the mount still unmounts.
    const stop = nextTerminationSignal();
    const mount = await startFuseMount(catalog, { dir: argv.dir, allowOther: argv.allowOther, blockSize: catalog.repo.chunkSize });
    // Ends on SIGINT/SIGTERM, or when the mount is unmounted from outside (fusermount -u, umount).
    const signal = await Promise.race([stop, mount.ended.then(() => undefined)]);
    if (signal) childLogger('fuse').info({ signal }, `${signal} received: unmounting ${mount.dir}`);
    await mount.unmount();
  },
};
