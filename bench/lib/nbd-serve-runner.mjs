// Runs the `serve` command module on its own (same yargs handler as `cairn serve`), for tests and
// benchmarks that must not depend on the command being registered in the CLI's main.
// Usage: node bench/lib/nbd-serve-runner.mjs serve --repo DIR --nbd unix:PATH [--log-level warn] [...]
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { setLogLevel } from '../../dist/log/index.js';
import { serveCommand } from '../../dist/cli/commands/serve.js';

await yargs(hideBin(process.argv))
  .option('log-level', { type: 'string', default: 'info' })
  .middleware((args) => setLogLevel(args['log-level']))
  .command(serveCommand)
  .demandCommand(1)
  .strict()
  .parseAsync();
