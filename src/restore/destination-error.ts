import { dirname } from 'node:path';
import { CairnError, systemErrorCode, type ErrorCode } from '../core/errors.js';

/**
 * System errors that say something about a destination the user named (a restore target, a file
 * standard output is redirected to), not about Cairn: each becomes a CairnError with one line naming
 * the destination. ENOENT and ENOTDIR mean the path does not lead anywhere (exit 3); full or over
 * quota is ERR_NO_SPACE (exit 6); the rest are the user's to fix (exit 2).
 */
const DESTINATION_ERRORS: Readonly<Record<string, { code: ErrorCode; says: (dest: string) => string }>> = {
  ENOENT: { code: 'ERR_NOT_FOUND', says: (dest) => `cannot write ${dest}: directory ${dirname(dest)} does not exist` },
  ENOTDIR: { code: 'ERR_NOT_FOUND', says: (dest) => `cannot write ${dest}: a component of its path is not a directory` },
  EACCES: { code: 'ERR_INVALID_ARGUMENT', says: (dest) => `cannot write ${dest}: permission denied` },
  EPERM: { code: 'ERR_INVALID_ARGUMENT', says: (dest) => `cannot write ${dest}: operation not permitted` },
  EISDIR: { code: 'ERR_INVALID_ARGUMENT', says: (dest) => `cannot write ${dest}: it is a directory` },
  EROFS: { code: 'ERR_READ_ONLY', says: (dest) => `cannot write ${dest}: read-only filesystem` },
  ENAMETOOLONG: { code: 'ERR_INVALID_ARGUMENT', says: (dest) => `cannot write ${dest}: name too long` },
  ELOOP: { code: 'ERR_INVALID_ARGUMENT', says: (dest) => `cannot write ${dest}: too many levels of symbolic links` },
  EFBIG: { code: 'ERR_INVALID_ARGUMENT', says: (dest) => `cannot write ${dest}: the disk is larger than its filesystem allows for a file` },
  ENOSPC: { code: 'ERR_NO_SPACE', says: (dest) => `no space left on device writing ${dest}` },
  EDQUOT: { code: 'ERR_NO_SPACE', says: (dest) => `disk quota exceeded writing ${dest}` },
};

/** The user error for a system error on `dest`, or undefined when the error is not about the destination. */
export function destinationError(err: unknown, dest: string): CairnError | undefined {
  if (err instanceof CairnError) return undefined;
  const code = systemErrorCode(err);
  const known = code !== undefined ? DESTINATION_ERRORS[code] : undefined;
  if (!known) return undefined;
  return new CairnError(known.code, known.says(dest), { file: dest, errno: code }, { cause: err });
}

/** Rethrows a system error on `dest` as its user error; anything else unchanged. */
export function rethrowForDestination(err: unknown, dest: string): never {
  throw destinationError(err, dest) ?? err;
}
