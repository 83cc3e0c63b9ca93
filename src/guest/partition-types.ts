/** One partition as found in a table; offsets and lengths in bytes from the start of the disk. */
export interface PartitionEntry {
  /** Linux numbering: GPT entry index + 1; MBR slots 1–4, logical partitions from 5. */
  number: number;
  offset: number;
  length: number;
  /** GPT type GUID (upper case) or MBR type byte as `0x83`. */
  type: string;
  /** Human name of the type when known (e.g. 'Linux filesystem'). */
  typeName?: string;
  /** GPT partition name (UTF-16 in the table). */
  name?: string;
  /** GPT unique partition GUID. */
  uuid?: string;
  /** MBR: active flag; logical partitions live in the extended partition's EBR chain. */
  bootable?: boolean;
  logical?: boolean;
}

export type PartitionTableKind = 'gpt' | 'mbr' | 'none';

export interface PartitionTable {
  kind: PartitionTableKind;
  /** Logical sector size the table was found with. */
  sectorSize: number;
  /** GPT disk GUID, or the MBR disk signature as 8 hex digits. */
  diskId?: string;
  partitions: PartitionEntry[];
  /** Problems that did not stop reading (e.g. a damaged primary GPT header, backup used). */
  warnings: string[];
}
