import { CairnError } from '../core/errors.js';
import type { SlotPatch } from './disk-index.js';

/**
 * The plaintext of one slot of a disk: its chunk (or zeros for a hole) with its patches applied in
 * order. Returns undefined when the whole slot reads as zeros. `load` returns a chunk's verified
 * plaintext (from a cache or the store); the chunk buffers it returns are never modified.
 */
export async function assembleSlot(
  digest: string | undefined,
  patches: readonly SlotPatch[],
  length: number,
  load: (digest: string) => Promise<Buffer>,
): Promise<Buffer | undefined> {
  if (patches.length === 0) return digest === undefined ? undefined : load(digest);
  if (digest === undefined && patches.every((patch) => patch.digest === undefined)) return undefined;
  const [base, ...patchData] = await Promise.all([
    digest === undefined ? undefined : load(digest),
    ...patches.map((patch) => (patch.digest === undefined ? undefined : load(patch.digest))),
  ]);
  const slot = Buffer.alloc(length);
  base?.copy(slot, 0, 0, Math.min(base.length, length));
  patches.forEach((patch, n) => {
    const data = patchData[n];
    if (!data) {
      slot.fill(0, patch.start, patch.start + patch.length);
      return;
    }
    if (patch.chunkOffset + patch.length > data.length) {
      throw new CairnError(
        'ERR_FORMAT_INVALID',
        `patch at ${patch.start} of a slot reads past the end of chunk ${patch.digest} (${data.length} bytes)`,
        { chunkId: patch.digest },
      );
    }
    data.copy(slot, patch.start, patch.chunkOffset, patch.chunkOffset + patch.length);
  });
  return slot;
}

/** A string naming a patched slot's content, for caches keyed by content. */
export function patchedSlotKey(digest: string | undefined, patches: readonly SlotPatch[]): string {
  const parts = patches.map((p) => `${p.start}+${p.length}=${p.digest ?? '0'}@${p.chunkOffset}`);
  return `${digest ?? 'hole'}|${parts.join(',')}`;
}
