import { lstat, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CairnError, systemErrorCode } from '../../core/errors.js';
import { formatListenAddress, type NbdListenAddress } from './listen-address.js';

/** What a failed listen() means to the user, per errno; `listenFailure` handles the Unix-socket cases first. */
const LISTEN_ERRNO_REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the address is already in use (another server is listening there)',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'that address does not belong to this machine',
  ENOTFOUND: 'unknown host name',
  EAI_AGAIN: 'the host name could not be resolved right now',
  EINVAL: 'invalid address',
};

/**
 * Turns a listen() error into one clear CairnError line. libuv reports a Unix socket path whose
 * directory is missing as EACCES (uv_pipe_bind maps ENOENT so), so the directory is looked at before
 * the errno is believed.
 */
export async function listenFailure(address: NbdListenAddress, err: unknown): Promise<CairnError> {
  const where = formatListenAddress(address);
  const errno = systemErrorCode(err);
  const fail = (code: 'ERR_NOT_FOUND' | 'ERR_INVALID_ARGUMENT', reason: string): CairnError =>
    new CairnError(code, `cannot listen on ${where}: ${reason}`, { address: where, errno }, { cause: err });

  if (address.kind === 'unix') {
    const dir = dirname(address.path);
    const dirState = await stat(dir).then(
      (s) => (s.isDirectory() ? 'directory' : 'other'),
      (e: unknown) => (systemErrorCode(e) === 'ENOENT' ? 'missing' : 'unknown'),
    );
    if (dirState === 'missing') return fail('ERR_NOT_FOUND', `directory ${dir} does not exist`);
    if (dirState === 'other' || errno === 'ENOTDIR') return fail('ERR_INVALID_ARGUMENT', `${dir} is not a directory`);
    if (errno === 'EADDRINUSE') {
      // A dead socket file was removed before listening: what is left is a live server or not a socket.
      const socket = await lstat(address.path).then(
        (s) => s.isSocket(),
        () => false,
      );
      return fail(
        'ERR_INVALID_ARGUMENT',
        socket ? 'another server is listening on that socket' : `${address.path} exists and is not a socket`,
      );
    }
    if (errno === 'EACCES') return fail('ERR_INVALID_ARGUMENT', `permission denied creating a socket in ${dir}`);
  } else if (errno === 'EACCES' && address.port < 1024) {
    return fail('ERR_INVALID_ARGUMENT', `permission denied (port ${address.port} needs privileges)`);
  }
  const reason = (errno !== undefined ? LISTEN_ERRNO_REASONS[errno] : undefined) ?? errno ?? String(err);
  return fail('ERR_INVALID_ARGUMENT', reason);
}
