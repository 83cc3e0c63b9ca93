import { CairnError, systemErrorCode } from '../core/errors.js';

/** Translates a failed write into ERR_NO_SPACE where that is the reason, so the CLI can say so plainly. */
export function translateWriteError(err: unknown, path: string): unknown {
  const code = systemErrorCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new CairnError('ERR_NO_SPACE', `no space left on the repository's filesystem (writing ${path})`, { file: path }, { cause: err });
  }
  return err;
}
