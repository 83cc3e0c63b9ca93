import type { SlotPatch } from '../store/disk-index.js';

/** Bundle buffers kept for reuse; more are only in flight when the store is slower than the source. */
const MAX_SPARE_BUFFERS = 4;

interface Bundle {
  /** The bundle's bytes so far: a chunk-sized buffer taken at the first added bytes. */
  buffer: Buffer | undefined;
  length: number;
  /** Patches whose bytes are in this bundle: their digest is filled in when it is stored. */
  patches: SlotPatch[];
  stored: Promise<void>;
  settle: (err?: unknown) => void;
}

function newBundle(): Bundle {
  let settle!: (err?: unknown) => void;
  const stored = new Promise<void>((resolve, reject) => {
    settle = (err) => (err === undefined ? resolve() : reject(err));
  });
  // Failures reach the writer through onFailure; nobody may be left with an unhandled rejection.
  stored.catch(() => undefined);
  return { buffer: undefined, length: 0, patches: [], stored, settle };
}

/**
 * Collects the changed bytes of several patched slots into one patch chunk of up to a chunk's size:
 * a CBT incremental of a few hundred scattered blocks writes a handful of chunk files, not one per
 * block. The patches pointing into a bundle get its digest once it is stored. Bundle buffers come
 * back for reuse once stored: fresh 1 MiB buffers (page faults, GC of external memory) cost more
 * than the copy into them.
 */
export class PatchBundler {
  private bundle = newBundle();
  private readonly spareBuffers: Buffer[] = [];
  private readonly writes = new Set<Promise<void>>();

  constructor(
    private readonly chunkSize: number,
    /** Stores a bundle's bytes as a chunk and returns its digest; `plain` is ours again once it settles. */
    private readonly store: (plain: Buffer) => Promise<string>,
    private readonly onFailure: (err: unknown) => void,
  ) {}

  /**
   * Adds one slot's changed bytes (at most a chunk) and the patches that point into them (their
   * `chunkOffset` counted from the first piece); returns when those bytes are stored.
   */
  add(pieces: Buffer[], patches: SlotPatch[]): Promise<void> {
    const length = pieces.reduce((sum, piece) => sum + piece.length, 0);
    if (this.bundle.length + length > this.chunkSize) this.flush();
    const bundle = this.bundle;
    const offset = bundle.length;
    bundle.buffer ??= this.spareBuffers.pop() ?? Buffer.allocUnsafeSlow(this.chunkSize);
    for (const piece of pieces) bundle.length += piece.copy(bundle.buffer, bundle.length);
    for (const patch of patches) {
      patch.chunkOffset += offset;
      bundle.patches.push(patch);
    }
    return bundle.stored;
  }

  /** Writes the current bundle (if it holds anything) and starts a new one. */
  flush(): void {
    const full = this.bundle;
    this.bundle = newBundle();
    if (full.buffer === undefined) return full.settle();
    const buffer = full.buffer;
    const writing = this.store(buffer.subarray(0, full.length)).then(
      (digest) => {
        for (const patch of full.patches) patch.digest = digest;
        full.settle();
        if (this.spareBuffers.length < MAX_SPARE_BUFFERS) this.spareBuffers.push(buffer);
      },
      (err: unknown) => {
        this.onFailure(err);
        full.settle(err);
      },
    );
    this.writes.add(writing);
    void writing.finally(() => this.writes.delete(writing));
  }

  /** Ends bundling: writes the last bundle, or on failure gives it up (its ranges are never acknowledged). */
  async finish(failure: unknown): Promise<void> {
    if (failure !== undefined) this.bundle.settle(failure);
    else this.flush();
    await Promise.all(this.writes);
  }
}
