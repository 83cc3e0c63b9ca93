import { CairnError, type ErrorContext } from '../../../core/errors.js';

/**
 * ERR_FORMAT_INVALID for a damaged or hostile structure: `where` names it (`MFT record 70`, `boot
 * sector`, `directory 64 index block 3`) so that the message says what to look at with ntfsinfo.
 */
export function formatInvalid(volume: string, where: string, problem: string, context: ErrorContext = {}): CairnError {
  return new CairnError('ERR_FORMAT_INVALID', `${volume}: ntfs ${where}: ${problem}`, { volume, structure: where, ...context });
}

/** ERR_UNSUPPORTED for something this reader does not read (a version, encryption, a reparse tag). */
export function unsupported(volume: string, feature: string, detail: string, context: ErrorContext = {}): CairnError {
  return new CairnError('ERR_UNSUPPORTED', `${volume}: ntfs ${feature} is not supported (${detail})`, { volume, feature, ...context });
}

/** The name errors use for an MFT record. */
export const recordName = (record: number): string => `MFT record ${record}`;
