// The composition root: yargs commands wire the store, ingest, restore, NBD and FUSE together.
// The only place that reads argv and the environment, handles signals and sets the exit code.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { CairnError } from '../core/errors.js';
import { logger, setLogLevel } from '../log/index.js';
import { backupCommand } from './commands/backup.js';
import { catCommand } from './commands/cat.js';
import { configCommand } from './commands/config.js';
import { gcCommand } from './commands/gc.js';
import { initCommand } from './commands/init.js';
import { lsCommand } from './commands/ls.js';
import { monitorCommand } from './commands/monitor.js';
import { mountCommand } from './commands/mount.js';
import { pruneCommand } from './commands/prune.js';
import { restoreCommand } from './commands/restore.js';
import { rmCommand } from './commands/rm.js';
import { serveCommand } from './commands/serve.js';
import { statCommand } from './commands/stat.js';
import { verifyCommand } from './commands/verify.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';
import { InterruptedError } from './interrupt.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

function reportFailure(err: unknown): number {
  if (err instanceof InterruptedError) {
    logger.error(err.message);
    return ExitCode.INTERRUPTED;
  }
  if (err instanceof CairnError) {
    const exitCode = exitCodeFor(err.code);
    if (exitCode === ExitCode.INTERNAL) logger.error({ err }, err.message);
    else process.stderr.write(`cairn: ${err.message}\n`);
    return exitCode;
  }
  // Anything else is a bug: log the stack.
  logger.error({ err }, `internal error: ${(err as Error)?.message ?? String(err)}`);
  return ExitCode.INTERNAL;
}

export async function main(argv: string[]): Promise<void> {
  const cli = yargs(argv)
    .scriptName('cairn')
    .usage('$0 <command> [options]\n\nCairn: deduplicated backup storage for VM disks, served over NBD and FUSE.\nDisks are named by pseudo-URLs cairn://VM/POINT/DISK[/pN] (POINT may be "latest").')
    .option('log-level', { choices: LOG_LEVELS, default: 'info' as const, describe: 'log verbosity (logs go to stderr)' })
    .middleware((args) => setLogLevel(args['log-level']))
    .command(initCommand)
    .command(backupCommand)
    .command(lsCommand)
    .command(statCommand)
    .command(catCommand)
    .command(restoreCommand)
    .command(configCommand)
    .command(rmCommand)
    .command(pruneCommand)
    .command(gcCommand)
    .command(verifyCommand)
    .command(monitorCommand)
    .command(serveCommand)
    .command(mountCommand)
    .demandCommand(1, 'name a command; see --help')
    .strict()
    .recommendCommands()
    .fail((message, err) => {
      if (err) throw err;
      throw new CairnError('ERR_INVALID_ARGUMENT', message);
    })
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(120, process.stdout.columns || 100));
  try {
    await cli.parseAsync();
  } catch (err) {
    process.exitCode = reportFailure(err);
  }
}

await main(hideBin(process.argv));
