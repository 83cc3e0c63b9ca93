import { nbdProtocolError } from '../protocol/index.js';

/** One block-status descriptor placed on the disk: [offset, offset+length) has `flags`. */
export interface StatusExtent {
  offset: number;
  length: number;
  flags: number;
}

/** The request a reply chunk answers, as far as placing the chunk needs it. */
export interface PlacedRequest {
  offset: number;
  length: number;
  /** READ: the ranges filled so far (relative to the request). */
  filled?: Array<[number, number]>;
  /** BLOCK_STATUS: extents per context id. */
  status?: Map<number, StatusExtent[]>;
}

/**
 * Checks that a READ chunk lies inside its request and overlaps nothing already received, records
 * it, and returns where it starts relative to the request. A chunk that fails is never placed.
 */
export function placeReadChunk(request: PlacedRequest, offset: number, length: number, where: string): number {
  const start = offset - request.offset;
  if (start < 0 || start + length > request.length) {
    throw nbdProtocolError(
      `NBD server ${where} sent read data at ${offset}+${length} outside the request ${request.offset}+${request.length}`,
    );
  }
  for (const [s, e] of request.filled!) {
    if (start < e && start + length > s) throw nbdProtocolError(`NBD server ${where} sent overlapping read chunks at ${offset}`);
  }
  request.filled!.push([start, start + length]);
  return start;
}

/**
 * Turns one block-status chunk into extents on the disk and records them under its context: only a
 * selected context, once per reply, no zero-length extents, nothing past the export, and only the
 * last extent may run past the request (it is clipped). Neighbours with equal flags are merged.
 */
export function placeStatusChunk(
  request: PlacedRequest,
  payload: { contextId: number; descriptors: Array<{ length: number; flags: number }> },
  exportInfo: { size: number; metaContexts: ReadonlyMap<string, number> },
  where: string,
): void {
  const known = [...exportInfo.metaContexts.values()].includes(payload.contextId);
  if (!known) throw nbdProtocolError(`NBD server ${where} sent block status for unselected context ${payload.contextId}`);
  if (request.status!.has(payload.contextId)) throw nbdProtocolError(`NBD server ${where} sent two status chunks for one context`);
  const end = request.offset + request.length;
  const extents: StatusExtent[] = [];
  let cursor = request.offset;
  for (const d of payload.descriptors) {
    if (d.length === 0) throw nbdProtocolError(`NBD server ${where} sent a zero-length block status extent`);
    if (cursor >= end) throw nbdProtocolError(`NBD server ${where} sent block status extents past the requested range`);
    if (cursor + d.length > exportInfo.size) {
      throw nbdProtocolError(`NBD server ${where} sent block status to ${cursor + d.length}, past the export size ${exportInfo.size}`, {
        offset: cursor,
        length: d.length,
        size: exportInfo.size,
      });
    }
    const length = Math.min(d.length, end - cursor);
    const last = extents[extents.length - 1];
    if (last && last.flags === d.flags) last.length += length;
    else extents.push({ offset: cursor, length, flags: d.flags });
    cursor += length;
  }
  request.status!.set(payload.contextId, extents);
}
