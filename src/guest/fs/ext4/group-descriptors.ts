import { BoundedCache } from '../../../util/bounded-cache.js';
import { groupDescChecksum } from './checksums.js';
import { formatInvalid } from './errors.js';
import { GROUP_DESC } from './layout.js';
import { groupFirstBlock, groupHasSuper, hasIncompat, type Superblock } from './superblock.js';
import type { VolumeIO } from './volume-io.js';

/** What the reader needs of one group: where its inode table is and whether it is initialised. */
export interface GroupDescriptor {
  readonly inodeTable: number;
  readonly flags: number;
}

/**
 * Block number of descriptor block `index` (group_descr.rst, blockgroup.rst "Meta Block Groups";
 * the kernel's descriptor_loc): one table after the superblock, or with meta_bg, from
 * s_first_meta_bg on, one block in the first group of each meta group, after its superblock backup.
 */
export function descriptorBlock(sb: Superblock, index: number): number {
  if (!hasIncompat(sb, 'meta_bg') || index < sb.firstMetaBg) return sb.firstDataBlock + 1 + index;
  const group = index * sb.descPerBlock;
  let offset = groupHasSuper(sb, group) ? 1 : 0;
  // 1 KiB blocks with s_first_data_block 0 (bigalloc): group 0's superblock still takes block 1.
  if (sb.blockSize === 1024 && index === 0 && sb.firstDataBlock === 0) offset++;
  return groupFirstBlock(sb, group) + offset;
}

/** Group descriptors, read a descriptor block at a time on first use, checked, and cached. */
export class GroupDescriptors {
  private readonly cache: BoundedCache<number, GroupDescriptor[]>;
  private readonly inodeTableBlocks: number;

  constructor(
    private readonly io: VolumeIO,
    private readonly sb: Superblock,
    cacheBytes: number,
  ) {
    this.cache = new BoundedCache(cacheBytes, (list) => 64 + list.length * 48);
    this.inodeTableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
  }

  async get(group: number): Promise<GroupDescriptor> {
    const index = Math.floor(group / this.sb.descPerBlock);
    const list = await this.cache.get(index, () => this.load(index));
    const desc = list[group % this.sb.descPerBlock];
    if (!desc) throw formatInvalid(this.io.name, `group ${group} descriptor`, 'no such group');
    return desc;
  }

  private async load(index: number): Promise<GroupDescriptor[]> {
    const sb = this.sb;
    const block = descriptorBlock(sb, index);
    const bytes = await this.io.readBlocks(block, 1, `descriptor block ${index}`);
    const list: GroupDescriptor[] = [];
    const first = index * sb.descPerBlock;
    const count = Math.min(sb.descPerBlock, sb.groupCount - first);
    const is64bit = hasIncompat(sb, '64bit');
    for (let i = 0; i < count; i++) {
      const group = first + i;
      const desc = bytes.subarray(i * sb.descSize, (i + 1) * sb.descSize);
      const where = `group ${group} descriptor`;
      if (sb.metadataCsum || sb.gdtCsum) {
        const stored = desc.readUInt16LE(GROUP_DESC.bg_checksum);
        const computed = groupDescChecksum(desc, group, {
          metadataCsum: sb.metadataCsum,
          csumSeed: sb.csumSeed,
          uuid: sb.uuidBytes,
          is64bit,
        });
        if (stored !== computed) {
          throw formatInvalid(
            this.io.name,
            where,
            `checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)})`,
            {
              group,
              block,
            },
          );
        }
      }
      const hi = is64bit ? desc.readUInt32LE(GROUP_DESC.bg_inode_table_hi) : 0;
      const inodeTable = desc.readUInt32LE(GROUP_DESC.bg_inode_table_lo) + hi * 2 ** 32;
      if (inodeTable <= sb.firstDataBlock || inodeTable + this.inodeTableBlocks > sb.blocksCount) {
        throw formatInvalid(this.io.name, where, `inode table at block ${inodeTable} lies outside the filesystem`, { group, inodeTable });
      }
      const flags = sb.metadataCsum || sb.gdtCsum ? desc.readUInt16LE(GROUP_DESC.bg_flags) : 0;
      list.push({ inodeTable, flags });
    }
    return list;
  }
}
