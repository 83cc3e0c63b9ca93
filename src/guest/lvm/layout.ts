/**
 * On-disk layout of an LVM2 physical volume, as lvm2 reads it. Every integer is little-endian.
 *
 * Sources: lvm2 `lib/label/label.h` (struct label_header, LABEL_SCAN_SECTORS), `lib/format_text/layout.h`
 * (struct pv_header, disk_locn, mda_header, raw_locn, FMTT_MAGIC), `lib/format_text/text_label.c`
 * (`label_check_pv_layout`: both area lists must end inside the label sector),
 * `lib/format_text/format-text.c` (`raw_parse_mda_header`, `_vg_read_raw_area`: the circular text
 * buffer and its wrap back to MDA start + 512), `lib/misc/crc.c` (the checksum); libyal/libvslvm
 * "Logical Volume Manager (LVM) format" §2–3; shared/reference/formats.md §6.3.
 *
 * ```
 * PV:  sector 0..3   one of them holds the label sector (normally sector 1)
 *      label sector  label_header (32 bytes) | pv_header at label_header.offset:
 *                      uuid[32] | device_size u64 | data areas {offset u64, size u64}* 0 |
 *                      metadata areas {offset u64, size u64}* 0 | (pv_header_extension)
 *      metadata area mda_header (512 bytes) | circular text buffer [512, size)
 *      data area     physical extents from pe_start (VG metadata, in sectors)
 * ```
 */

/** LVM counts pe_start, dev_size, extent_size and stripe_size in 512-byte sectors, whatever the disk. */
export const LVM_SECTOR_SIZE = 512;

/** struct label_header (lib/label/label.h). */
export const LABEL = {
  /** The label may sit in any of the first four sectors (LABEL_SCAN_SECTORS). */
  SCAN_SECTORS: 4,
  /** LABEL_SIZE: the label is one 512-byte sector. */
  SIZE: 512,
  ID_OFFSET: 0,
  ID: 'LABELONE',
  /** u64: the sector the label claims to be in; a label found elsewhere is ignored. */
  SECTOR_OFFSET: 8,
  /** u32: CRC of the sector from CONTENTS_OFFSET_OFFSET to its end. */
  CRC_OFFSET: 16,
  /** u32: offset of the pv_header from the start of the label sector (32 as lvm writes it). */
  CONTENTS_OFFSET_OFFSET: 20,
  TYPE_OFFSET: 24,
  TYPE: 'LVM2 001',
  HEADER_SIZE: 32,
} as const;

/** struct pv_header (lib/format_text/layout.h). */
export const PV_HEADER = {
  UUID_OFFSET: 0,
  /** ID_LEN: the UUID as 32 ASCII characters, without the dashes the text metadata writes. */
  UUID_LENGTH: 32,
  /** u64, bytes. */
  DEVICE_SIZE_OFFSET: 32,
  /** Two lists of disk_locn, each ended by an entry whose offset is 0. */
  AREAS_OFFSET: 40,
  SIZE: 40,
} as const;

/** struct disk_locn: a byte range of the device. */
export const DISK_LOCN = {
  OFFSET: 0,
  SIZE: 8,
  LENGTH: 16,
} as const;

/** struct mda_header (lib/format_text/layout.h): the first 512 bytes of a metadata area. */
export const MDA_HEADER = {
  /** MDA_HEADER_SIZE; the text buffer follows it and wraps back to it. */
  SIZE: 512,
  /** u32: CRC of bytes [MAGIC_OFFSET, SIZE). */
  CHECKSUM_OFFSET: 0,
  MAGIC_OFFSET: 4,
  /** FMTT_MAGIC. */
  MAGIC: ' LVM2 x[5A%r0N*>',
  VERSION_OFFSET: 20,
  /** FMTT_VERSION. */
  VERSION: 1,
  /** u64: absolute byte offset of this header; must equal the area's offset in the pv_header. */
  START_OFFSET: 24,
  /** u64: size of the whole metadata area in bytes, header included. */
  AREA_SIZE_OFFSET: 32,
  /** raw_locn slots: 0 = committed metadata, 1 = precommitted (ignored by readers). */
  RAW_LOCNS_OFFSET: 40,
} as const;

/** struct raw_locn: where the current metadata text lies in the circular buffer. */
export const RAW_LOCN = {
  /** u64: offset from the start of the metadata area (header included). */
  OFFSET: 0,
  /** u64: text length in bytes, its terminating NUL included. */
  SIZE: 8,
  /** u32: CRC of the text bytes (both pieces when it wraps). */
  CHECKSUM: 16,
  /** u32: RAW_LOCN_IGNORED marks a metadata area that `pvchange --metadataignore` switched off. */
  FLAGS: 20,
  LENGTH: 24,
  FLAG_IGNORED: 0x00000001,
} as const;

/** lib/misc/crc.h INITIAL_CRC: lvm seeds its CRC-32 (reflected 0xEDB88320, no final xor) with this. */
export const LVM_CRC_INITIAL = 0xf597a6cf;

/** Caps on what an untrusted PV may make Cairn read or allocate. */
export const LVM_LIMITS = {
  /** Bytes of metadata text read from one area (lvm's default area is 1 MiB; one copy fits in half). */
  MAX_METADATA_TEXT: 16 * 1024 * 1024,
  /** lvm keeps at most two metadata areas per PV; a label sector cannot list more than this anyway. */
  MAX_METADATA_AREAS: 8,
} as const;

function assertLayout(condition: boolean, what: string): void {
  if (!condition) throw new Error(`LVM layout table is inconsistent: ${what}`);
}

assertLayout(LABEL.ID.length === 8 && LABEL.TYPE.length === 8, 'label id and type are 8 bytes');
assertLayout(LABEL.TYPE_OFFSET + LABEL.TYPE.length === LABEL.HEADER_SIZE, 'label header is 32 bytes');
assertLayout(LABEL.HEADER_SIZE + PV_HEADER.SIZE + 4 * DISK_LOCN.LENGTH <= LABEL.SIZE, 'pv_header fits the label sector');
assertLayout(MDA_HEADER.MAGIC.length === 16 && MDA_HEADER.MAGIC_OFFSET + 16 === MDA_HEADER.VERSION_OFFSET, 'mda magic is 16 bytes');
assertLayout(MDA_HEADER.RAW_LOCNS_OFFSET + 2 * RAW_LOCN.LENGTH <= MDA_HEADER.SIZE, 'two raw_locn slots fit the mda header');
