import { constants } from 'node:os';
import { isCairnError, systemErrorCode, type ErrorCode } from '../core/errors.js';

const { errno } = constants;

/**
 * The one place where Cairn errors become FUSE errnos. FUSE wants negative values; a code missing
 * from this table is a bug elsewhere and reads as EIO, which a reader can always cope with.
 */
const ERRNO_OF_CODE: Readonly<Record<ErrorCode, number>> = {
  ERR_NOT_FOUND: errno.ENOENT,
  ERR_INVALID_ARGUMENT: errno.EINVAL,
  ERR_FORMAT_INVALID: errno.EIO,
  ERR_CHUNK_CORRUPT: errno.EIO,
  ERR_CHUNK_MISSING: errno.EIO,
  ERR_LOCKED: errno.EBUSY,
  ERR_EXISTS: errno.EEXIST,
  ERR_NO_SPACE: errno.ENOSPC,
  ERR_SOURCE: errno.EIO,
  ERR_NBD_PROTOCOL: errno.EIO,
  ERR_NBD_REMOTE: errno.EIO,
  ERR_TIMEOUT: errno.ETIMEDOUT,
  ERR_OUT_OF_RANGE: errno.EINVAL,
  ERR_READ_ONLY: errno.EROFS,
  ERR_IO: errno.EIO,
  ERR_UNSUPPORTED: errno.EOPNOTSUPP,
};

export const ERRNO = {
  ENOENT: -errno.ENOENT,
  EIO: -errno.EIO,
  EBADF: -errno.EBADF,
  EROFS: -errno.EROFS,
  EISDIR: -errno.EISDIR,
  ENOTDIR: -errno.ENOTDIR,
  EINVAL: -errno.EINVAL,
  ENOTCONN: -errno.ENOTCONN,
} as const;

/** Negative errno for any thrown value. */
export function fuseErrnoOf(err: unknown): number {
  if (isCairnError(err)) return -(ERRNO_OF_CODE[err.code] ?? errno.EIO);
  const code = systemErrorCode(err);
  if (code !== undefined && code in errno) return -errno[code as keyof typeof errno];
  return -errno.EIO;
}
