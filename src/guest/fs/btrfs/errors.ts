import { CairnError, type ErrorContext } from '../../../core/errors.js';

/**
 * ERR_FORMAT_INVALID for a damaged or hostile structure: `where` names it (`superblock`, `tree block
 * at 30687232`, `subvolume 256 inode 258`) so that the message says what to look at with
 * `btrfs inspect-internal dump-tree` or `btrfs check`.
 */
export function formatInvalid(volume: string, where: string, problem: string, context: ErrorContext = {}): CairnError {
  return new CairnError('ERR_FORMAT_INVALID', `${volume}: btrfs ${where}: ${problem}`, { volume, structure: where, ...context });
}

/** ERR_UNSUPPORTED for a feature this reader does not implement, named as btrfs-progs names it. */
export function unsupported(volume: string, feature: string, detail: string, context: ErrorContext = {}): CairnError {
  return new CairnError('ERR_UNSUPPORTED', `${volume}: btrfs feature '${feature}' is not supported (${detail})`, {
    volume,
    feature,
    ...context,
  });
}
