import type { FatTable } from './fat-table.js';

/**
 * A cluster chain as runs of consecutive cluster numbers, the shape both reads (one volume read per
 * run) and extents (one extent per run) want. `firstIndex[i]` is the chain position of run i's first
 * cluster, so a position is found by binary search. Typed arrays keep 12 bytes per run, whatever the
 * chain's length.
 */
export class ClusterRuns {
  constructor(
    readonly starts: Uint32Array,
    readonly counts: Uint32Array,
    readonly firstIndex: Uint32Array,
    /** Clusters in the chain. */
    readonly clusters: number,
  ) {}

  get runCount(): number {
    return this.starts.length;
  }

  get byteSize(): number {
    return 64 + this.starts.length * 12;
  }

  /** Index of the run holding chain position `position` (0 ≤ position < clusters). */
  runAt(position: number): number {
    let low = 0;
    let high = this.starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((this.firstIndex[mid] ?? 0) <= position) low = mid;
      else high = mid - 1;
    }
    return low;
  }
}

export const EMPTY_RUNS = new ClusterRuns(new Uint32Array(0), new Uint32Array(0), new Uint32Array(0), 0);

/**
 * Follows the chain from `first` to its end-of-chain mark. More than `maxClusters` clusters is an
 * error (`tooLong` says what that means for the owner: a size the chain overruns, a directory past
 * the spec's limit); since no chain may be longer, that bound also ends any loop. A link to a free,
 * reserved, bad or out-of-range cluster is damage naming `owner`.
 */
export async function walkChain(fat: FatTable, first: number, maxClusters: number, owner: string, tooLong: string): Promise<ClusterRuns> {
  if (!fat.inRange(first))
    throw fat.damaged(owner, `first cluster ${first} is outside the data clusters 2..${fat.maxCluster}`, { cluster: first });
  const runs = new RunBuilder(first);
  let clusters = 1;
  let cluster = first;
  for (;;) {
    const piece = await fat.piece(cluster);
    // Stay on this piece synchronously: one await per piece, not per cluster.
    for (;;) {
      const link = fat.link(piece, cluster);
      if (link.kind === 'end') return runs.finish(clusters);
      if (link.kind !== 'next') {
        throw fat.damaged(
          owner,
          `cluster ${cluster} (position ${clusters - 1} of the chain) links to a ${link.kind} cluster (FAT value 0x${link.value.toString(16)})`,
          {
            cluster,
            value: link.value,
          },
        );
      }
      if (clusters >= maxClusters)
        throw fat.damaged(owner, `cluster chain has more than ${maxClusters} clusters: ${tooLong}`, { cluster, maxClusters });
      clusters++;
      cluster = link.cluster;
      runs.add(cluster);
      if (cluster < piece.firstCluster || cluster >= piece.firstCluster + piece.entries) break;
    }
  }
}

/** Collects runs in typed arrays that double as they fill (8 bytes per run while walking). */
class RunBuilder {
  private starts: Uint32Array = new Uint32Array(16);
  private counts: Uint32Array = new Uint32Array(16);
  private runs = 1;

  constructor(first: number) {
    this.starts[0] = first;
    this.counts[0] = 1;
  }

  add(cluster: number): void {
    const last = this.runs - 1;
    const count = this.counts[last] ?? 0;
    if (cluster === (this.starts[last] ?? 0) + count) {
      this.counts[last] = count + 1;
      return;
    }
    if (this.runs === this.starts.length) {
      const grow = (old: Uint32Array): Uint32Array => {
        const bigger = new Uint32Array(old.length * 2);
        bigger.set(old);
        return bigger;
      };
      this.starts = grow(this.starts);
      this.counts = grow(this.counts);
    }
    this.starts[this.runs] = cluster;
    this.counts[this.runs] = 1;
    this.runs++;
  }

  finish(clusters: number): ClusterRuns {
    const firstIndex = new Uint32Array(this.runs);
    let position = 0;
    for (let i = 0; i < this.runs; i++) {
      firstIndex[i] = position;
      position += this.counts[i] ?? 0;
    }
    return new ClusterRuns(this.starts.slice(0, this.runs), this.counts.slice(0, this.runs), firstIndex, clusters);
  }
}
