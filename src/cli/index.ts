// The composition root: `bin/cairn` runs main.ts, which loads only the yargs command being run;
// commands wire the store, ingest, restore, NBD and FUSE together. Exit codes are in exit-codes.ts.
export { ExitCode, exitCodeFor } from './exit-codes.js';
