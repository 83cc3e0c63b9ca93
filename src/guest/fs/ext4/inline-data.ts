import { formatInvalid } from './errors.js';
import type { Ext4Inode } from './inode.js';
import { INODE, XATTR } from './layout.js';

/**
 * The value of the in-inode extended attribute `system.data` (attributes.rst "Extended Attributes",
 * inlinedata.rst), or undefined when the inode has none. Each entry is bounds-checked against the
 * in-inode area; the walk ends at the 4-byte zero terminator or the end of the area.
 */
export function findSystemData(inode: Ext4Inode, volume: string): Buffer | undefined {
  const area = inode.xattrArea;
  const where = `inode ${inode.ino} in-inode xattrs`;
  if (area.length < XATTR.IBODY_HEADER_SIZE || area.readUInt32LE(0) !== XATTR.MAGIC) return undefined;
  const values = area.subarray(XATTR.IBODY_HEADER_SIZE);
  let at = 0;
  while (at + 4 <= values.length && values.readUInt32LE(at) !== 0) {
    if (at + XATTR.ENTRY_HEADER_SIZE > values.length) throw formatInvalid(volume, where, `entry at ${at} is truncated`, { ino: inode.ino });
    const nameLength = values[at + XATTR.e_name_len]!;
    const size = (XATTR.ENTRY_HEADER_SIZE + nameLength + 3) & ~3;
    if (at + size > values.length) throw formatInvalid(volume, where, `entry at ${at} runs past the inode`, { ino: inode.ino });
    const name = values.subarray(at + XATTR.e_name, at + XATTR.e_name + nameLength).toString('latin1');
    if (values[at + XATTR.e_name_index] === XATTR.INDEX_SYSTEM && name === XATTR.SYSTEM_DATA_NAME) {
      if (values.readUInt32LE(at + XATTR.e_value_inum) !== 0)
        throw formatInvalid(volume, where, 'system.data lives in an EA inode', { ino: inode.ino });
      const offset = values.readUInt16LE(at + XATTR.e_value_offs);
      const length = values.readUInt32LE(at + XATTR.e_value_size);
      if (offset + length > values.length)
        throw formatInvalid(volume, where, `system.data value ${offset}+${length} runs past the inode`, { ino: inode.ino });
      return values.subarray(offset, offset + length);
    }
    at += size;
  }
  return undefined;
}

/** The whole inline content of an inline-data inode: i_block, then system.data. */
export function inlineContent(inode: Ext4Inode, volume: string): { head: Buffer; tail: Buffer } {
  const tail = findSystemData(inode, volume);
  if (!tail) throw formatInvalid(volume, `inode ${inode.ino}`, 'has the inline-data flag but no system.data attribute', { ino: inode.ino });
  return { head: inode.iBlock.subarray(0, INODE.I_BLOCK_SIZE), tail };
}
