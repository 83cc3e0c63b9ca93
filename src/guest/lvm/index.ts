// LVM2, read-only and in process, for single-file restore: finds physical volumes on a restore
// point's disks and partitions, assembles their volume groups (one may span several disks) and serves
// each linear or striped logical volume as a BlockReader that a guest filesystem reader can open.
//
// API:
// - `assembleVolumeGroups(candidates: {name, reader}[]) → LvmScan`: scans every candidate (whole
//   disks and partitions alike) for an LVM label, reads its metadata areas (the circular buffer,
//   wrapped or not, checksums checked), and builds the VGs from the copy with the highest seqno.
//   `scan.volumeGroups[i]` = {name, uuid, seqno, extentSize, physicalVolumes, logicalVolumes};
//   each visible LV = {name, uuid, size, segments, missingPhysicalVolumes, problem?, open()}.
//   `scan.problems` lists what did not stop the scan (a damaged metadata area, a missing PV…);
//   `scan.physicalVolumes` every PV label found, by candidate. Pass every disk and partition of the
//   point at once: a VG found through one disk may need the PVs on the others.
// - `findVolumeGroup(scan, vg)` / `findLogicalVolume(scan, vg, lv)`: the lookups behind
//   `cairn://VM/POINT/DISK/lvm/VG/LV`; ERR_NOT_FOUND naming what exists and what went wrong.
// - `lv.open()`: a `LogicalVolumeReader` (BlockReader; allocation passes the PVs' holes through).
//   Throws `lv.problem`: ERR_UNSUPPORTED for thin, raid*, mirror, cache, snapshot, vdo, writecache…
//   (the type and the LV named), ERR_FORMAT_INVALID for damaged metadata (overlapping segments,
//   extents beyond a PV). Ranges on a PV that is not among the candidates read as ERR_NOT_FOUND
//   naming the PV; the rest of the LV, and other LVs, stay readable.
// - `scanPhysicalVolume(reader)`: one device's label and metadata (undefined when it is not a PV).
// Only the label sectors and metadata areas are read (each text capped at 16 MiB); LV reads go
// straight to the PV readers. Files: layout (on-disk tables), pv-label, mda-header, config-text
// (the metadata syntax), vg-metadata (its meaning), lv-mapping (checks, bytes), logical-volume-reader.
export { assembleVolumeGroups, findLogicalVolume, findVolumeGroup } from './volume-group.js';
export type { LogicalVolume, LogicalVolumeSegment, LvmCandidate, LvmScan, VolumeGroup, VolumeGroupPv } from './volume-group.js';
export { scanPhysicalVolume } from './physical-volume.js';
export type { MetadataAreaInfo, MetadataAreaState, PvInfo } from './physical-volume.js';
export type { DiskArea } from './pv-label.js';
export { LogicalVolumeReader } from './logical-volume-reader.js';
