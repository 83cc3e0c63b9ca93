import { CairnError, type ErrorContext } from '../../../core/errors.js';

/**
 * ERR_FORMAT_INVALID for a damaged or hostile structure: `where` names it (`inode 12`, `group 3
 * descriptor`, `superblock`) so that the message says what to look at with debugfs or e2fsck.
 */
export function formatInvalid(volume: string, where: string, problem: string, context: ErrorContext = {}): CairnError {
  return new CairnError('ERR_FORMAT_INVALID', `${volume}: ext4 ${where}: ${problem}`, { volume, structure: where, ...context });
}

/** ERR_UNSUPPORTED for a feature this reader does not implement, named as e2fsprogs names it. */
export function unsupported(volume: string, feature: string, detail: string, context: ErrorContext = {}): CairnError {
  return new CairnError('ERR_UNSUPPORTED', `${volume}: ext4 feature '${feature}' is not supported (${detail})`, {
    volume,
    feature,
    ...context,
  });
}
