import { CairnError, systemErrorCode } from '../core/errors.js';
import { logger } from '../log/index.js';
import { destinationError } from '../restore/destination-error.js';
import { ExitCode, exitCodeFor } from './exit-codes.js';
import { InterruptedError } from './interrupt.js';

/**
 * How a failed command reports: a user error is one line on stderr (`cairn: …`, or under --json one
 * JSON object `{"error":{"code","message","exitCode"}}`), a bug also logs its stack. Standard output
 * is watched here too: a reader that goes away (`cairn ls | head`) ends the output quietly, a full
 * disk behind `> file` is an ordinary user error.
 */
export interface ErrorReport {
  /** An ErrorCode, or ERR_INTERRUPTED / ERR_INTERNAL, which are not errors of the code base. */
  code: string;
  message: string;
  exitCode: number;
}

const STDOUT = 'standard output';
/** Errors already reported (a stdout error reaches us both as an event and through the command). */
const reported = new WeakSet<object>();
/** Errors stdout emitted: how a command's failure is known to be stdout's (stdout is never "destroyed"). */
const stdoutErrors = new WeakSet<object>();

/** The reader of standard output went away: `| head` read what it wanted. Not an error of ours. */
function isReaderGone(err: unknown): boolean {
  const code = systemErrorCode(err);
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

/** The error stdout emitted, when `err` is it (or wraps it). */
function stdoutErrorOf(err: unknown): object | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  if (stdoutErrors.has(err)) return err;
  const cause = (err as { cause?: unknown }).cause;
  return typeof cause === 'object' && cause !== null && stdoutErrors.has(cause) ? cause : undefined;
}

function describe(err: unknown): ErrorReport & { bug: boolean } {
  if (err instanceof InterruptedError) return { code: 'ERR_INTERRUPTED', message: err.message, exitCode: ExitCode.INTERRUPTED, bug: false };
  if (err instanceof CairnError) {
    const exitCode = exitCodeFor(err.code);
    return { code: err.code, message: err.message, exitCode, bug: exitCode === ExitCode.INTERNAL };
  }
  return {
    code: 'ERR_INTERNAL',
    message: `internal error: ${(err as Error)?.message ?? String(err)}`,
    exitCode: ExitCode.INTERNAL,
    bug: true,
  };
}

function write(report: ErrorReport, json: boolean): void {
  const line = json
    ? JSON.stringify({ error: { code: report.code, message: report.message, exitCode: report.exitCode } })
    : `cairn: ${report.message}`;
  process.stderr.write(line + '\n');
}

/** A failed write to stdout: quiet when its reader left, else the destination's user error, once. */
function reportStdoutFailure(raw: object, json: boolean): number {
  // Output stopped because the reader left: nothing to say, and the command's own outcome stands.
  if (isReaderGone(raw)) return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.OK;
  const err = destinationError(raw, STDOUT) ?? raw;
  if (reported.has(raw)) return describe(err).exitCode;
  reported.add(raw);
  return print(err, json);
}

function print(err: unknown, json: boolean): number {
  const report = describe(err);
  if (report.bug) logger.error({ err }, report.message);
  if (!report.bug || json) write(report, json);
  return report.exitCode;
}

/**
 * Reports why a command failed and returns its exit code. Call it after `outputEventsSettled()`, so a
 * write error of stdout has been seen as the stream's.
 */
export function reportFailure(err: unknown, json: boolean): number {
  const fromStdout = stdoutErrorOf(err);
  return fromStdout !== undefined ? reportStdoutFailure(fromStdout, json) : print(err, json);
}

/**
 * Watches stdout and stderr for errors that arrive as events, after the command wrote its result:
 * without a listener they crash the process with a stack (`write EPIPE`).
 */
export function watchOutputStreams(json: boolean): void {
  process.stdout.on('error', (err) => {
    stdoutErrors.add(err);
    if (!isReaderGone(err)) process.exitCode = reportStdoutFailure(err, json);
  });
  // Nowhere is left to say anything about a failing stderr.
  process.stderr.on('error', () => undefined);
}

/** Resolves once the stream events already queued (a write's 'error' follows its callback) have run. */
export function outputEventsSettled(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
