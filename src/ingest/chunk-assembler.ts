import type { Extent } from '../core/extent.js';
import { CairnError } from '../core/errors.js';

/** A slice of an extent that falls into one chunk. */
export interface ChunkPart {
  /** Offset within the chunk. */
  start: number;
  length: number;
  kind: Extent['kind'];
  data?: Buffer;
}

export interface AssembledChunk {
  type: 'chunk';
  index: number;
  /** Offset of the chunk on the disk. */
  offset: number;
  length: number;
  parts: ChunkPart[];
}

/**
 * Consecutive whole chunks that are all zeros or all unchanged: handled in one step, so a 2 TiB
 * sparse disk or a mostly unchanged incremental does not cost one object and one await per chunk.
 */
export interface ChunkRun {
  type: 'run';
  kind: 'zero' | 'unchanged';
  firstIndex: number;
  count: number;
}

/**
 * Cuts an extent stream into fixed-size chunks. Yields each chunk with the extent slices that cover it,
 * as soon as it is complete; checks that extents come in order without gaps or overlaps.
 */
export async function* assembleChunks(
  extents: AsyncIterable<Extent>,
  chunkSize: number,
  expectedSize: number | undefined,
): AsyncIterable<AssembledChunk | ChunkRun> {
  let position = 0;
  let current: AssembledChunk | undefined;
  for await (const extent of extents) {
    if (extent.offset !== position) {
      throw new CairnError('ERR_SOURCE', `extent stream out of order: expected offset ${position}, got ${extent.offset}`, {
        offset: extent.offset,
      });
    }
    if (extent.length <= 0) continue;
    if (extent.kind === 'data' && (!extent.data || extent.data.length !== extent.length)) {
      throw new CairnError('ERR_SOURCE', `data extent at ${extent.offset} carries ${extent.data?.length ?? 0} bytes, not ${extent.length}`);
    }
    if (expectedSize !== undefined && extent.offset + extent.length > expectedSize) {
      throw new CairnError('ERR_SOURCE', `extent at ${extent.offset} runs past the disk size ${expectedSize}`);
    }
    let done = 0;
    while (done < extent.length) {
      const at = extent.offset + done;
      const index = Math.floor(at / chunkSize);
      if (!current && extent.kind !== 'data' && at === index * chunkSize) {
        // Whole chunks of zeros or unchanged data (a shorter last chunk ends the run only if the size is known).
        const end = extent.offset + extent.length;
        const whole = end === expectedSize ? Math.ceil((end - at) / chunkSize) : Math.floor((end - at) / chunkSize);
        if (whole > 0) {
          yield { type: 'run', kind: extent.kind, firstIndex: index, count: whole };
          done = Math.min(extent.length, done + whole * chunkSize);
          continue;
        }
      }
      if (!current) {
        const offset = index * chunkSize;
        const length = expectedSize === undefined ? chunkSize : Math.min(chunkSize, expectedSize - offset);
        current = { type: 'chunk', index, offset, length, parts: [] };
      }
      const start = at - current.offset;
      const take = Math.min(extent.length - done, current.length - start);
      current.parts.push({
        start,
        length: take,
        kind: extent.kind,
        ...(extent.data ? { data: extent.data.subarray(done, done + take) } : {}),
      });
      done += take;
      if (start + take === current.length) {
        yield current;
        current = undefined;
      }
    }
    position = extent.offset + extent.length;
  }
  if (expectedSize !== undefined && position !== expectedSize) {
    throw new CairnError('ERR_SOURCE', `source ended at offset ${position}, expected ${expectedSize} bytes`, { offset: position });
  }
  if (current) {
    // A stream of unknown size ended inside a chunk: that chunk is the disk's shorter last one.
    const end = current.parts.reduce((max, part) => Math.max(max, part.start + part.length), 0);
    current.length = end;
    yield current;
  }
}
