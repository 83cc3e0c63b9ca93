/** Stable error codes: callers branch on `code`, never on message text. */
export const ErrorCode = {
  ERR_NOT_FOUND: 'ERR_NOT_FOUND',
  ERR_INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT',
  ERR_FORMAT_INVALID: 'ERR_FORMAT_INVALID',
  ERR_CHUNK_CORRUPT: 'ERR_CHUNK_CORRUPT',
  ERR_CHUNK_MISSING: 'ERR_CHUNK_MISSING',
  ERR_LOCKED: 'ERR_LOCKED',
  ERR_EXISTS: 'ERR_EXISTS',
  ERR_NO_SPACE: 'ERR_NO_SPACE',
  ERR_SOURCE: 'ERR_SOURCE',
  ERR_NBD_PROTOCOL: 'ERR_NBD_PROTOCOL',
  ERR_NBD_REMOTE: 'ERR_NBD_REMOTE',
  ERR_TIMEOUT: 'ERR_TIMEOUT',
  ERR_OUT_OF_RANGE: 'ERR_OUT_OF_RANGE',
  ERR_READ_ONLY: 'ERR_READ_ONLY',
  ERR_IO: 'ERR_IO',
  /** A format, filesystem or feature Cairn does not read (named in the message); the raw bytes stay available. */
  ERR_UNSUPPORTED: 'ERR_UNSUPPORTED',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ErrorContext {
  [key: string]: unknown;
}

/** The one error class of Cairn: a stable code, a human message, structured context and a cause. */
export class CairnError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CairnError';
    this.code = code;
    this.context = context;
  }
}

export function isCairnError(err: unknown, code?: ErrorCode): err is CairnError {
  return err instanceof CairnError && (code === undefined || err.code === code);
}

/** Node's system errors carry an errno string code such as ENOENT. */
export function systemErrorCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}
