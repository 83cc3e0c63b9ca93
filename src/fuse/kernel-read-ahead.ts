import { writeFile } from 'node:fs/promises';

/**
 * The kernel's read-ahead window for a FUSE mount, set through its backing device in sysfs
 * (`/sys/class/bdi/0:MINOR/read_ahead_kb`). FUSE's INIT reply can only lower the default 128 KiB
 * (the kernel takes the smaller of the two), so a larger window has to be written here. Measured on
 * the 2-core bench machine (`bench/fuse-read.mjs`, cold 2 GiB reads through `cairn mount`): 128 KiB
 * ~780 MB/s, 1 MiB ~950 MB/s, 4 MiB ~740 MB/s (more read-ahead than the chunk prefetch keeps up with).
 */
export const KERNEL_READ_AHEAD_KIB = 1024;

/**
 * Sets the read-ahead window of the FUSE connection `minor` (the mount's device minor). Needs root;
 * returns false when sysfs refuses (not root, no sysfs), which only costs sequential speed.
 */
export async function setKernelReadAhead(minor: number): Promise<boolean> {
  return writeFile(`/sys/class/bdi/0:${minor}/read_ahead_kb`, String(KERNEL_READ_AHEAD_KIB)).then(
    () => true,
    () => false,
  );
}
