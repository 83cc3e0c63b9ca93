import { formatInvalid, recordName, unsupported } from './errors.js';
import { ATTR_TYPE, SUPPORTED_VERSIONS, SYSTEM_FILES, VOLUME_INFORMATION } from './layout.js';
import { toWtf8, utf16Units } from './names.js';
import { findAttribute, type NtfsNode } from './node.js';

/** What $Volume says about the volume. */
export interface VolumeInformation {
  /** `major.minor`. */
  readonly version: string;
  readonly dirty: boolean;
  readonly label?: string;
}

/**
 * Reads $Volume's $VOLUME_INFORMATION and $VOLUME_NAME (libfsntfs "The volume information
 * attribute"): refuses versions this reader does not know (ntfs-3g refuses the same: the layout of
 * records and attributes changed between them), reports the dirty flag.
 */
export function volumeInformation(node: NtfsNode, volume: string): VolumeInformation {
  const info = findAttribute(node, ATTR_TYPE.VOLUME_INFORMATION);
  if (!info?.resident || info.resident.value.length < VOLUME_INFORMATION.SIZE) {
    throw formatInvalid(volume, recordName(SYSTEM_FILES.VOLUME), 'has no $VOLUME_INFORMATION');
  }
  const v = info.resident.value;
  const version = `${v[VOLUME_INFORMATION.major_ver]}.${v[VOLUME_INFORMATION.minor_ver]}`;
  if (!SUPPORTED_VERSIONS.includes(version))
    throw unsupported(volume, `version ${version}`, `this reader knows NTFS ${SUPPORTED_VERSIONS.join(', ')}`);
  const dirty = (v.readUInt16LE(VOLUME_INFORMATION.flags) & VOLUME_INFORMATION.FLAG_IS_DIRTY) !== 0;
  const name = findAttribute(node, ATTR_TYPE.VOLUME_NAME);
  const value = name?.resident?.value;
  const label = value && value.length >= 2 ? toWtf8(utf16Units(value, 0, Math.floor(value.length / 2))).toString('utf8') : undefined;
  return label === undefined ? { version, dirty } : { version, dirty, label };
}
