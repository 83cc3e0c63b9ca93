import { CairnError } from '../../core/errors.js';
import { u64leSafe } from '../le-fields.js';
import { DISK_LOCN, LABEL, LVM_LIMITS, PV_HEADER } from './layout.js';
import { lvmCrc } from './lvm-crc.js';
import { formatLvmUuid } from './lvm-names.js';

/** A byte range of the PV's device. `size` 0 in a data area means "to the end of the device". */
export interface DiskArea {
  readonly offset: number;
  readonly size: number;
}

/** What the label sector of a PV says: its identity and where its metadata areas are. */
export interface PvLabel {
  /** The sector (0–3) the label was found in. */
  readonly sector: number;
  /** PV UUID in the dashed form the text metadata uses (6-4-4-4-4-4-6). */
  readonly uuid: string;
  /** Device size recorded by pvcreate, bytes. */
  readonly deviceSize: number;
  readonly dataAreas: readonly DiskArea[];
  readonly metadataAreas: readonly DiskArea[];
}

/**
 * Finds and parses the LVM label in the first sectors of a device (`head`: its first 2048 bytes, or
 * fewer on a tiny device). Undefined when no sector starts with `LABELONE` of type `LVM2 001` (not a
 * PV). A label that is there but damaged (its checksum, its sector number, its area lists) is
 * ERR_FORMAT_INVALID: lvm would skip such a PV, and saying why beats "PV missing" later.
 */
export function parsePvLabel(head: Buffer): PvLabel | undefined {
  let damage: string | undefined;
  for (let sector = 0; sector < LABEL.SCAN_SECTORS; sector++) {
    const start = sector * LABEL.SIZE;
    if (start + LABEL.SIZE > head.length) break;
    const bytes = head.subarray(start, start + LABEL.SIZE);
    if (bytes.toString('latin1', LABEL.ID_OFFSET, LABEL.ID_OFFSET + LABEL.ID.length) !== LABEL.ID) continue;
    // Another labeller's LABELONE (none exists today besides lvm's text format) is not ours.
    if (bytes.toString('latin1', LABEL.TYPE_OFFSET, LABEL.TYPE_OFFSET + LABEL.TYPE.length) !== LABEL.TYPE) continue;
    const claimed = bytes.readBigUInt64LE(LABEL.SECTOR_OFFSET);
    if (claimed !== BigInt(sector)) {
      damage ??= `LVM label in sector ${sector} claims to be in sector ${claimed}`;
      continue;
    }
    const stored = bytes.readUInt32LE(LABEL.CRC_OFFSET);
    const computed = lvmCrc(bytes.subarray(LABEL.CONTENTS_OFFSET_OFFSET));
    if (stored !== computed) {
      damage ??= `LVM label in sector ${sector} has a bad checksum (stored 0x${hex(stored)}, computed 0x${hex(computed)})`;
      continue;
    }
    return parsePvHeader(bytes, sector);
  }
  if (damage !== undefined) throw new CairnError('ERR_FORMAT_INVALID', damage, { structure: 'lvm label' });
  return undefined;
}

function parsePvHeader(label: Buffer, sector: number): PvLabel {
  const fail = (why: string): never => {
    throw new CairnError('ERR_FORMAT_INVALID', `LVM label in sector ${sector}: ${why}`, { structure: 'lvm pv_header', sector });
  };
  const contents = label.readUInt32LE(LABEL.CONTENTS_OFFSET_OFFSET);
  if (contents < LABEL.HEADER_SIZE || contents > LABEL.SIZE - PV_HEADER.SIZE) fail(`pv_header offset ${contents} is outside the sector`);
  const rawUuid = label.toString('latin1', contents + PV_HEADER.UUID_OFFSET, contents + PV_HEADER.UUID_OFFSET + PV_HEADER.UUID_LENGTH);
  const uuid = formatLvmUuid(rawUuid);
  if (uuid === undefined) return fail('the PV UUID is not 32 characters of [A-Za-z0-9!#]');
  const deviceSize = u64leSafe(label, contents + PV_HEADER.DEVICE_SIZE_OFFSET, 'pv_header.device_size');
  let at = contents + PV_HEADER.AREAS_OFFSET;
  const readList = (what: string): DiskArea[] => {
    const areas: DiskArea[] = [];
    for (;;) {
      // lvm's label_check_pv_layout: every list must end (offset 0) inside the label sector.
      if (at + DISK_LOCN.LENGTH > LABEL.SIZE) fail(`the ${what} list runs past the end of the sector`);
      const offset = u64leSafe(label, at + DISK_LOCN.OFFSET, `pv_header ${what} offset`);
      const size = u64leSafe(label, at + DISK_LOCN.SIZE, `pv_header ${what} size`);
      at += DISK_LOCN.LENGTH;
      if (offset === 0) return areas;
      areas.push({ offset, size });
    }
  };
  const dataAreas = readList('data area');
  const metadataAreas = readList('metadata area');
  if (metadataAreas.length > LVM_LIMITS.MAX_METADATA_AREAS)
    fail(`${metadataAreas.length} metadata areas (at most ${LVM_LIMITS.MAX_METADATA_AREAS})`);
  return { sector, uuid, deviceSize, dataAreas, metadataAreas };
}

function hex(value: number): string {
  return value.toString(16).padStart(8, '0');
}
