import { isCairnError, systemErrorCode, type ErrorCode } from '../../core/errors.js';
import { NBD_ERROR, NBD_REP } from '../protocol/constants.js';

const { NBD_EINVAL: EINVAL, NBD_EIO: EIO, NBD_ENOSPC: ENOSPC, NBD_EPERM: EPERM } = NBD_ERROR;

/**
 * The one translation of Cairn errors to NBD error values in replies. The spec's list is short
 * (clients treat unknown values as EINVAL, and ENOTSUP is reserved for FAST_ZERO), so anything that
 * is not the caller's mistake is EIO: a damaged chunk must read as an I/O error.
 */
const NBD_ERROR_OF_CODE: Readonly<Record<ErrorCode, number>> = {
  ERR_NOT_FOUND: EIO, // the export was found at open time; something behind it vanished since
  ERR_INVALID_ARGUMENT: EINVAL,
  ERR_FORMAT_INVALID: EIO,
  ERR_CHUNK_CORRUPT: EIO,
  ERR_CHUNK_MISSING: EIO,
  ERR_LOCKED: EIO,
  ERR_EXISTS: EIO,
  ERR_NO_SPACE: ENOSPC,
  ERR_SOURCE: EIO,
  ERR_NBD_PROTOCOL: EIO,
  ERR_NBD_REMOTE: EIO,
  ERR_TIMEOUT: EIO,
  ERR_OUT_OF_RANGE: EINVAL,
  ERR_READ_ONLY: EPERM,
  ERR_IO: EIO,
  ERR_UNSUPPORTED: EIO,
};

const { NBD_REP_ERR_UNKNOWN: UNKNOWN, NBD_REP_ERR_POLICY: POLICY } = NBD_REP;

/**
 * The option error reply (GO, INFO, meta contexts) for an export that cannot be opened. Only "no
 * such export" is ERR_UNKNOWN, which clients report as a missing name (libnbd: "server has no export
 * named", Cairn's client: ERR_NOT_FOUND). An export that exists but cannot be served, most often
 * because its index fails verification, is ERR_POLICY: Cairn refuses to serve what it cannot
 * verify; qemu prints "Denied by server" followed by the message, which names the damage.
 * (ERR_PLATFORM is "not currently used" in the spec, and qemu reads it as a missing feature.)
 */
const OPEN_REPLY_OF_CODE: Readonly<Record<ErrorCode, number>> = {
  ERR_NOT_FOUND: UNKNOWN,
  ERR_INVALID_ARGUMENT: UNKNOWN, // a name that is not VM/POINT/DISK[/pN]
  ERR_OUT_OF_RANGE: UNKNOWN, // a partition number the disk does not have
  ERR_UNSUPPORTED: UNKNOWN, // a volume Cairn cannot offer (say, an unsupported partition table)
  ERR_FORMAT_INVALID: POLICY,
  ERR_CHUNK_CORRUPT: POLICY,
  ERR_CHUNK_MISSING: POLICY,
  ERR_LOCKED: POLICY,
  ERR_EXISTS: POLICY,
  ERR_NO_SPACE: POLICY,
  ERR_SOURCE: POLICY,
  ERR_NBD_PROTOCOL: POLICY,
  ERR_NBD_REMOTE: POLICY,
  ERR_TIMEOUT: POLICY,
  ERR_READ_ONLY: POLICY,
  ERR_IO: POLICY,
};

export function toNbdError(err: unknown): number {
  // `?? EIO`: an error value of 0 would tell the client its request succeeded.
  if (isCairnError(err)) return NBD_ERROR_OF_CODE[err.code] ?? EIO;
  switch (systemErrorCode(err)) {
    case 'ENOMEM':
      return NBD_ERROR.NBD_ENOMEM;
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return ENOSPC;
    default:
      return EIO;
  }
}

/** NBD_REP_ERR_UNKNOWN when the export does not exist, ERR_POLICY when it exists but cannot be served. */
export function openFailureReply(err: unknown): number {
  return (isCairnError(err) ? OPEN_REPLY_OF_CODE[err.code] : undefined) ?? POLICY;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
