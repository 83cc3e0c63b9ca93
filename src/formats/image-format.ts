/**
 * Which image format a file or stream holds, from its magic numbers:
 * - qcow2: "QFI\xfb" at 0 (qemu docs/interop/qcow2.txt, "Header");
 * - VHD: cookie "conectix" in the footer, copied at 0 for dynamic and differencing disks, only at the
 *   end for fixed ones (Microsoft VHD specification, "Hard Disk Footer Format");
 * - rbd: the banners of ceph doc/dev/rbd-diff.rst and rbd-export.rst;
 * - VHDX ("vhdxfile") and VMDK ("KDMV") are recognised only to be named in a refusal.
 */
export const IMAGE_FORMATS = ['raw', 'qcow2', 'vhd', 'rbd-diff', 'rbd-export'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];
export type DetectedFormat = Exclude<ImageFormat, 'raw'> | 'vhdx' | 'vmdk';

export const IMAGE_MAGIC = {
  qcow2: Buffer.from([0x51, 0x46, 0x49, 0xfb]),
  vhd: Buffer.from('conectix', 'latin1'),
  vhdx: Buffer.from('vhdxfile', 'latin1'),
  vmdk: Buffer.from('KDMV', 'latin1'),
  rbdDiffV1: Buffer.from('rbd diff v1\n', 'latin1'),
  rbdDiffV2: Buffer.from('rbd diff v2\n', 'latin1'),
  rbdImageV2: Buffer.from('rbd image v2\n', 'latin1'),
} as const;

/** The most bytes detection looks at from the start. */
export const DETECT_HEAD_LENGTH = 16;

const startsWith = (buf: Buffer, magic: Buffer) => buf.length >= magic.length && buf.subarray(0, magic.length).equals(magic);

/** The format named by the first bytes (`head`) and, for a file, its last 512 bytes (`tail`); undefined for raw. */
export function detectImageFormat(head: Buffer, tail?: Buffer): DetectedFormat | undefined {
  if (startsWith(head, IMAGE_MAGIC.qcow2)) return 'qcow2';
  if (startsWith(head, IMAGE_MAGIC.vhd)) return 'vhd';
  if (startsWith(head, IMAGE_MAGIC.vhdx)) return 'vhdx';
  if (startsWith(head, IMAGE_MAGIC.vmdk)) return 'vmdk';
  if (startsWith(head, IMAGE_MAGIC.rbdDiffV1) || startsWith(head, IMAGE_MAGIC.rbdDiffV2)) return 'rbd-diff';
  if (startsWith(head, IMAGE_MAGIC.rbdImageV2)) return 'rbd-export';
  if (tail && tail.length === 512 && startsWith(tail, IMAGE_MAGIC.vhd)) return 'vhd';
  return undefined;
}
