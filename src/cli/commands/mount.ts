import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import type { CommandModule, Options } from 'yargs';
import { nextTerminationSignal } from '../interrupt.js';
import type { Catalog } from '../../core/catalog.js';
import { CairnError, systemErrorCode } from '../../core/errors.js';
import type { FuseMount } from '../../fuse/index.js';
import { childLogger } from '../../log/index.js';
import { openCatalogFromArgs, withRepoOption, type RepoArgs } from '../context.js';
import { numberOption } from '../options.js';

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

function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const unavailable = (why: string, cause?: unknown) =>
  new CairnError('ERR_UNSUPPORTED', `FUSE is not available: ${why}`, {}, cause !== undefined ? { cause } : undefined);

/**
 * Loads src/fuse, and with it fuse-native and libfuse.so.2, only when a mount is asked for: `serve`
 * without --mount and every other command run on a machine without libfuse2. What is missing is
 * said in one line, with the Debian package that brings it.
 */
export function loadFuse(): Promise<typeof import('../../fuse/index.js')> {
  return (loading ??= checkAndLoadFuse());
}

let loading: Promise<typeof import('../../fuse/index.js')> | undefined;

async function checkAndLoadFuse(): Promise<typeof import('../../fuse/index.js')> {
  if (!existsSync('/dev/fuse')) {
    throw unavailable('/dev/fuse is missing (load the module: modprobe fuse; in a container, pass the device: --device /dev/fuse)');
  }
  // Everything missing is named at once, with the Debian packages that bring it.
  const missing: string[] = [];
  const packages: string[] = [];
  const libfuse = libfuseLoadError();
  if (libfuse !== undefined) {
    missing.push(`libfuse.so.2 cannot be loaded (${libfuse})`);
    packages.push('libfuse2');
  }
  // libfuse 2 mounts through the setuid fusermount unless run as root, and fuse-native always
  // unmounts with `fusermount -uz` (without it src/fuse falls back to umount -l, with a warning).
  if (!onPath('fusermount')) {
    missing.push('fusermount is not installed');
    packages.push('fuse3');
  }
  if (missing.length > 0) {
    throw unavailable(`${missing.join(' and ')}; install ${packages.length > 1 ? 'them' : 'it'} with 'apt install ${packages.join(' ')}'`);
  }
  try {
    return await import('../../fuse/index.js');
  } catch (err) {
    // fuse-native is an optional dependency: npm install skips it when its addon cannot load.
    if (systemErrorCode(err) === 'ERR_MODULE_NOT_FOUND' && /fuse-native/.test((err as Error).message)) {
      throw unavailable("the fuse-native package is not installed (npm skips it without libfuse2); run 'npm install' again", err);
    }
    throw err;
  }
}

/**
 * Asks the dynamic linker for libfuse.so.2 as fuse-native's addon will: found, it loads and then
 * fails only for not being a Node addon. The probe comes first because Node 20 reports a CommonJS
 * module that throws under an ESM import twice: to the import, and again as an uncaught exception.
 */
function libfuseLoadError(): string | undefined {
  try {
    process.dlopen({ exports: {} }, 'libfuse.so.2');
  } catch (err) {
    const message = (err as Error)?.message ?? String(err);
    return /did not self-register/.test(message) ? undefined : message;
  }
  return undefined;
}

/** Mounts the catalog's restore points at `dir`; `serve --mount` uses this beside the NBD server. */
export async function startFuseMount(catalog: Catalog, request: FuseMountRequest): Promise<FuseMount> {
  const { mountCatalog } = await loadFuse();
  // Resolved once: src/fuse logs the absolute path, and the logger binds the same one.
  const dir = resolve(request.dir);
  return mountCatalog(catalog, dir, {
    allowOther: request.allowOther ?? false,
    ...(request.blockSize !== undefined ? { blockSize: request.blockSize } : {}),
    log: childLogger('fuse', { dir }),
  });
}

/** `--cache-mib` of mount and serve: at least 16, so the cache holds two of the largest (8 MiB) chunks. */
export function cacheMibOption(describe: string): Options {
  return numberOption('cache-mib', { integer: true, min: 16, default: 256, describe });
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
      .option('cache-mib', cacheMibOption('memory for decompressed chunks, in MiB'))
      .epilog(
        'Exit codes: 0 after SIGINT/SIGTERM or an unmount from outside; 4 DIR is already a mount point; 8 FUSE is not available (the message names what to install: libfuse2, fuse3 for fusermount, or the /dev/fuse device).',
      ) as never,
  handler: async (argv) => {
    // Before the repository is opened: a machine without FUSE hears so first.
    await loadFuse();
    const catalog = await openCatalogFromArgs(argv, { cacheBytes: argv.cacheMib * 1024 * 1024 });
    // Listen before mounting so a signal during the mount still unmounts.
    const stop = nextTerminationSignal();
    const mount = await startFuseMount(catalog, { dir: argv.dir, allowOther: argv.allowOther, blockSize: catalog.repo.chunkSize });
    // Ends on SIGINT/SIGTERM, or when the mount is unmounted from outside (fusermount -u, umount).
    const signal = await Promise.race([stop, mount.ended.then(() => undefined)]);
    if (signal) childLogger('fuse').info({ signal }, `${signal} received: unmounting ${mount.dir}`);
    await mount.unmount();
  },
};
