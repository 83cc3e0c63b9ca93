import type { CommandModule } from 'yargs';
import type { Catalog } from '../../core/catalog.js';
import { CairnError } from '../../core/errors.js';
import { childLogger } from '../../log/index.js';
import {
  DEFAULT_NBD_ADDRESS,
  ExportRegistry,
  NbdServer,
  formatListenAddress,
  isLocalOnly,
  parseListenAddress,
  type NbdListenAddress,
} from '../../nbd/server/index.js';
import { openUrlReader } from '../../restore/open-url.js';
import { Namespace } from '../../restore/namespace/index.js';
import { openCatalogFromArgs, withRepoOption, type RepoArgs } from '../context.js';
import { nextTerminationSignal } from '../interrupt.js';
import { numberOption } from '../options.js';
import { cacheMibOption, loadFuse, startFuseMount } from './mount.js';

interface ServeArgs extends RepoArgs {
  nbd: string[];
  mount?: string;
  allowOther: boolean;
  listenAny: boolean;
  cacheMib: number;
  maxConnections: number;
}

export interface NbdServeRequest {
  addresses: string[];
  /** Allow addresses other than loopback and Unix sockets. */
  listenAny?: boolean;
  maxConnections?: number;
}

/** Parses and checks the addresses first (nothing listens if one is refused), then starts one server on all of them. */
export async function startNbdServer(
  catalog: Catalog,
  request: NbdServeRequest,
): Promise<{ server: NbdServer; bound: NbdListenAddress[] }> {
  const addresses = request.addresses.map(parseListenAddress);
  const exposed = addresses.filter((a) => !isLocalOnly(a));
  if (exposed.length > 0 && !request.listenAny) {
    throw new CairnError(
      'ERR_INVALID_ARGUMENT',
      `refusing to serve NBD beyond this machine on ${exposed.map(formatListenAddress).join(', ')}: add --listen-any to allow it`,
    );
  }
  const log = childLogger('nbd');
  const namespace = new Namespace(catalog, { warn: (message, context) => log.warn(context, message) });
  const server = new NbdServer({
    registry: new ExportRegistry(catalog, (_catalog, url) => openUrlReader(namespace, url)),
    log,
    ...(request.maxConnections !== undefined ? { maxConnections: request.maxConnections } : {}),
  });
  const bound: NbdListenAddress[] = [];
  try {
    for (const address of addresses) bound.push(await server.listen(address));
  } catch (err) {
    await server.close();
    throw err;
  }
  return { server, bound };
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: 'serve every disk of every restore point read-only over NBD (export names VM/POINT/DISK), until SIGINT/SIGTERM',
  builder: (yargs) =>
    withRepoOption(yargs)
      .option('nbd', {
        type: 'string',
        array: true,
        default: [DEFAULT_NBD_ADDRESS],
        describe: 'listen address, tcp://HOST:PORT or unix:PATH (repeatable)',
      })
      .option('mount', { type: 'string', describe: 'also mount every restore point read-only at this directory (FUSE)' })
      .option('allow-other', { type: 'boolean', default: false, describe: 'with --mount: let other users read the mount' })
      .option('listen-any', { type: 'boolean', default: false, describe: 'allow listening on addresses other than loopback' })
      .option('cache-mib', cacheMibOption('memory for decompressed chunks, shared by all clients, in MiB'))
      .option(
        'max-connections',
        numberOption('max-connections', { integer: true, min: 1, default: 256, describe: 'clients served at once; more are refused' }),
      )
      .epilog(
        'Exit codes: 0 after SIGINT/SIGTERM, once the requests in flight are answered; 8 --mount on a machine without FUSE (the message names the package to install). Without --mount, FUSE is not needed.',
      ) as never,
  handler: async (argv) => {
    // With --mount, a machine without FUSE hears so before anything listens.
    if (argv.mount !== undefined) await loadFuse();
    // `npm start` on a fresh machine: the default repository is created on first use.
    const catalog = await openCatalogFromArgs(argv, { cacheBytes: argv.cacheMib * 1024 * 1024, createDefault: true });
    const stop = nextTerminationSignal();
    const { server, bound } = await startNbdServer(catalog, {
      addresses: argv.nbd,
      listenAny: argv.listenAny,
      maxConnections: argv.maxConnections,
    });
    const log = childLogger('nbd');
    log.info({ addresses: bound.map(formatListenAddress) }, 'serving restore points over NBD');
    // The FUSE tree shares the catalog, so NBD clients and file readers share one chunk cache.
    const mount =
      argv.mount !== undefined
        ? await startFuseMount(catalog, { dir: argv.mount, allowOther: argv.allowOther, blockSize: catalog.repo.chunkSize }).catch(
            async (err: unknown) => {
              await server.close();
              throw err;
            },
          )
        : undefined;
    if (mount) childLogger('fuse').info({ dir: mount.dir }, 'serving restore points as files');
    void mount?.ended.then(() => childLogger('fuse').warn({ dir: mount.dir }, 'the mount was unmounted from outside; NBD exports go on'));
    const signal = await stop;
    log.info({ signal }, `${signal} received: answering in-flight requests, then stopping`);
    await Promise.all([server.close(), mount?.unmount()]);
  },
};
