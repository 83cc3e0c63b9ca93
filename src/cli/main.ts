// The composition root: yargs commands wire the store, ingest, restore, NBD and FUSE together.
// The only place that reads argv and the environment, handles signals and sets the exit code.
import { createRequire } from 'node:module';
import { CairnError } from '../core/errors.js';
import { setLogLevel } from '../log/index.js';
import type { CommandModule } from 'yargs';
import { outputEventsSettled, reportFailure, watchOutputStreams } from './report.js';

// yargs through its CommonJS build: one bundled file, where the ESM entry loads some twenty modules
// (require 15 ms, import 24 ms on the reference machine), and its help wraps at word boundaries (the
// ESM build of cliui breaks words in the middle).
const require = createRequire(import.meta.url);
const yargs = require('yargs') as typeof import('yargs').default;
const { hideBin } = require('yargs/helpers') as typeof import('yargs/helpers');
// From CommonJS, yargs looks for the version from the entry script (bin/cairn) up, and bin/package.json
// (the CommonJS marker) has none: name the package file. dist/cli and src/cli both sit two levels down.
const { version } = require('../../package.json') as { version: string };

/**
 * Commands load lazily: a backup should not pay for loading the FUSE addon or the NBD server, and
 * start-up time is most of a small incremental backup. The order here is the order of --help.
 */
const COMMANDS: Record<string, () => Promise<CommandModule<object, never>>> = {
  init: async () => (await import('./commands/init.js')).initCommand as never,
  backup: async () => (await import('./commands/backup.js')).backupCommand as never,
  ls: async () => (await import('./commands/ls.js')).lsCommand as never,
  stat: async () => (await import('./commands/stat.js')).statCommand as never,
  cat: async () => (await import('./commands/cat.js')).catCommand as never,
  restore: async () => (await import('./commands/restore.js')).restoreCommand as never,
  versions: async () => (await import('./commands/versions.js')).versionsCommand as never,
  config: async () => (await import('./commands/config.js')).configCommand as never,
  rm: async () => (await import('./commands/rm.js')).rmCommand as never,
  prune: async () => (await import('./commands/prune.js')).pruneCommand as never,
  gc: async () => (await import('./commands/gc.js')).gcCommand as never,
  verify: async () => (await import('./commands/verify.js')).verifyCommand as never,
  monitor: async () => (await import('./commands/monitor.js')).monitorCommand as never,
  serve: async () => (await import('./commands/serve.js')).serveCommand as never,
  mount: async () => (await import('./commands/mount.js')).mountCommand as never,
};

/** The command modules this invocation needs: the named one, or all of them (for --help and typos). */
async function loadCommands(argv: string[]): Promise<CommandModule<object, never>[]> {
  const first = argv.find((arg) => !arg.startsWith('-'));
  const loader = first !== undefined ? COMMANDS[first] : undefined;
  if (loader && !argv.includes('--help') && !argv.includes('-h')) return [await loader()];
  return Promise.all(Object.values(COMMANDS).map((load) => load()));
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** `--json` anywhere before `--`: errors are then printed as JSON too, even those yargs finds while parsing. */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((arg) => arg === '--json' || arg === '--json=true');
}

interface UsageInternals {
  getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } };
}

/**
 * yargs renders a command's whole --help text right after starting its handler, in case the handler
 * calls showHelp(): 6-8 ms of cliui work on the main thread for every `cairn backup`. Cairn never
 * shows help from a handler, and with our fail() yargs prints none on errors; --help renders it
 * anew. This reaches into yargs 17's internals, so it only acts when they look as expected.
 */
function skipHelpCache(cli: object): void {
  const usage = (cli as UsageInternals).getInternalMethods?.().getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => undefined;
}

export async function main(argv: string[]): Promise<void> {
  const json = wantsJson(argv);
  watchOutputStreams(json);
  let cli = yargs(argv)
    .scriptName('cairn')
    .usage(
      '$0 <command> [options]\n\nCairn: deduplicated backup storage for VM disks, served over NBD and FUSE.\nDisks are named by pseudo-URLs cairn://VM/POINT/DISK[/pN] (POINT may be "latest").',
    )
    .option('log-level', { choices: LOG_LEVELS, describe: 'log verbosity, logs go to stderr (default: $CAIRN_LOG_LEVEL, else info)' })
    .middleware((args) => {
      if (args['log-level'] !== undefined) setLogLevel(args['log-level']);
    })
    .demandCommand(1, 'name a command; see --help')
    .strict()
    .recommendCommands()
    .fail((message, err) => {
      // yargs' own errors (YError, also wrapping what an option's coerce threw) are usage errors.
      if (err && err.name !== 'YError') throw err;
      throw new CairnError('ERR_INVALID_ARGUMENT', message ?? err?.message ?? 'invalid usage');
    })
    .help()
    .alias('h', 'help')
    .version(version)
    .wrap(Math.min(120, process.stdout.columns || 100));
  skipHelpCache(cli);
  try {
    for (const command of await loadCommands(argv)) cli = cli.command(command);
    await cli.parseAsync();
  } catch (err) {
    await outputEventsSettled();
    process.exitCode = reportFailure(err, json);
  }
}

await main(hideBin(process.argv));
