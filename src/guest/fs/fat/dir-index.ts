import { lookupKeys, type DirItem } from './directory-scan.js';

/**
 * What lookups and the directory-entry checks need of one whole directory, built by one scan and
 * cached: the entries by listed name (bytes), by folded long name and 8.3 alias (the first entry in
 * directory order wins, as in Linux's vfat), and the first entry naming each subdirectory cluster.
 */
export class DirIndex {
  private readonly exact = new Map<string, number>();
  private readonly folded = new Map<string, number>();
  private readonly dirByCluster = new Map<number, bigint>();
  private readonly names: Buffer[] = [];
  private readonly ids: bigint[] = [];
  private readonly dirs: boolean[] = [];
  private bytes = 64;

  add(item: DirItem): void {
    const index = this.names.length;
    this.names.push(item.name);
    this.ids.push(item.id);
    this.dirs.push(item.isDir);
    const exactKey = item.name.toString('latin1');
    if (!this.exact.has(exactKey)) this.exact.set(exactKey, index);
    for (const key of lookupKeys(item)) {
      if (!this.folded.has(key)) this.folded.set(key, index);
      this.bytes += key.length * 2 + 48;
    }
    if (item.isDir && !this.dirByCluster.has(item.entry.firstCluster)) this.dirByCluster.set(item.entry.firstCluster, item.id);
    this.bytes += item.name.length * 3 + 160;
  }

  get byteSize(): number {
    return this.bytes;
  }

  /** The entry listed as `name`, else the first whose long name or alias folds to `foldedName`. */
  find(name: Buffer, foldedName: string | undefined): { name: Buffer; id: bigint; isDir: boolean } | undefined {
    const index = this.exact.get(name.toString('latin1')) ?? (foldedName === undefined ? undefined : this.folded.get(foldedName));
    if (index === undefined) return undefined;
    return { name: this.names[index] ?? Buffer.alloc(0), id: this.ids[index] ?? 0n, isDir: this.dirs[index] ?? false };
  }

  /** Id of the first entry of this directory that names directory cluster `cluster`. */
  directoryEntryOf(cluster: number): bigint | undefined {
    return this.dirByCluster.get(cluster);
  }
}
