import { systemErrorCode, type CairnError } from '../../core/errors.js';
import { NBD_ERROR } from '../protocol/constants.js';

/**
 * The one translation of Cairn errors to NBD error values. Clients treat unknown values as EINVAL,
 * so anything not a caller mistake becomes EIO (a damaged chunk must read as an I/O error).
 */
export function toNbdError(err: unknown): number {
  const code = (err as Partial<CairnError> | undefined)?.code;
  switch (code) {
    case 'ERR_OUT_OF_RANGE':
    case 'ERR_INVALID_ARGUMENT':
      return NBD_ERROR.NBD_EINVAL;
    case 'ERR_READ_ONLY':
      return NBD_ERROR.NBD_EPERM;
    case 'ERR_NO_SPACE':
      return NBD_ERROR.NBD_ENOSPC;
    default:
      break;
  }
  switch (systemErrorCode(err)) {
    case 'ENOMEM':
      return NBD_ERROR.NBD_ENOMEM;
    case 'ENOSPC':
      return NBD_ERROR.NBD_ENOSPC;
    default:
      return NBD_ERROR.NBD_EIO;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
