// Runs the `serve` command module on its own (same yargs handler as `cairn serve`), for tests and
// benchmarks that must not depend on the command being registered in the CLI's main.
// Usage: node bench/lib/nbd-serve-runner.mjs serve --repo DIR --nbd unix:PATH [...]
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { serveCommand } from '../../dist/cli/commands/serve.js';

await yargs(hideBin(process.argv)).command(serveCommand).demandCommand(1).strict().parseAsync();
