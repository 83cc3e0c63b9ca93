/** A btrfs key (struct btrfs_key): items sort by objectid, then type, then offset, all unsigned. */
export interface Key {
  readonly objectid: bigint;
  readonly type: number;
  readonly offset: bigint;
}

export function compareKeys(a: Key, b: Key): number {
  if (a.objectid !== b.objectid) return a.objectid < b.objectid ? -1 : 1;
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.offset !== b.offset) return a.offset < b.offset ? -1 : 1;
  return 0;
}

export const key = (objectid: bigint, type: number, offset: bigint): Key => ({ objectid, type, offset });

export function showKey(k: Key): string {
  return `(${k.objectid} ${k.type} ${k.offset})`;
}
