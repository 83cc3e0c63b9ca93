/** Reads verified chunk plaintext by digest (hex SHA-256); ERR_CHUNK_MISSING / ERR_CHUNK_CORRUPT otherwise. */
export interface ChunkReader {
  readChunk(digest: string): Promise<Buffer>;
}

/** Writes chunks; `touch` marks an existing chunk as in use so that GC keeps it. */
export interface ChunkWriter {
  /** Returns false when the chunk is absent (the caller must then write it). */
  touchChunk(digest: string): Promise<boolean>;
  /** `plain` belongs to the caller again once this settles (writers reuse their buffers). */
  writeChunk(digest: string, plain: Buffer): Promise<number>;
}

export interface ChunkStore extends ChunkReader, ChunkWriter {}
