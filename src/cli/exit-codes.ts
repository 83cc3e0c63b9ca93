import type { ErrorCode } from '../core/errors.js';

/**
 * Exit codes of every `cairn` command (documented in README.md). Errors are translated here, once.
 */
export const ExitCode = {
  OK: 0,
  /** A bug: the stack is logged. */
  INTERNAL: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  LOCKED: 4,
  /** Damaged data: a chunk or index that fails verification. */
  DAMAGED: 5,
  NO_SPACE: 6,
  /** The source of a backup failed: unreadable, truncated, NBD error or stall. */
  SOURCE_FAILED: 7,
  /** A format, guest filesystem or feature Cairn does not read. */
  UNSUPPORTED: 8,
  INTERRUPTED: 130,
} as const;

/**
 * Every error code has its exit code: the Record is exhaustive, so a new code in core/errors.ts does
 * not compile until it is mapped here (as fuse/errno.ts does for errnos).
 */
const EXIT_CODE_OF: Readonly<Record<ErrorCode, number>> = {
  ERR_INVALID_ARGUMENT: ExitCode.USAGE,
  ERR_EXISTS: ExitCode.USAGE,
  ERR_READ_ONLY: ExitCode.USAGE,
  ERR_OUT_OF_RANGE: ExitCode.USAGE,
  ERR_NOT_FOUND: ExitCode.NOT_FOUND,
  ERR_LOCKED: ExitCode.LOCKED,
  ERR_CHUNK_CORRUPT: ExitCode.DAMAGED,
  ERR_CHUNK_MISSING: ExitCode.DAMAGED,
  ERR_FORMAT_INVALID: ExitCode.DAMAGED,
  ERR_NO_SPACE: ExitCode.NO_SPACE,
  ERR_SOURCE: ExitCode.SOURCE_FAILED,
  ERR_NBD_PROTOCOL: ExitCode.SOURCE_FAILED,
  ERR_NBD_REMOTE: ExitCode.SOURCE_FAILED,
  ERR_TIMEOUT: ExitCode.SOURCE_FAILED,
  ERR_IO: ExitCode.SOURCE_FAILED,
  ERR_UNSUPPORTED: ExitCode.UNSUPPORTED,
};

export function exitCodeFor(code: ErrorCode): number {
  // A code that is not an ErrorCode at all (a value from outside the type system) is a bug.
  return EXIT_CODE_OF[code] ?? ExitCode.INTERNAL;
}
