import { open, readdir, rename, stat, unlink, utimes, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError, systemErrorCode } from '../core/errors.js';
import type { ChunkStore } from '../core/chunk-store.js';
import { decodeChunk, decodeChunkInto, encodeChunk } from './chunk-format.js';
import { ChunkReadSlots } from './chunk-read-slots.js';
import { tempPathFor } from '../util/atomic-file.js';
import { startWriteback, syncFilesystem } from '../util/native.js';

const DIGEST_PATTERN = /^[0-9a-f]{64}$/;
/** Up to this many new chunks are made durable one by one; more with one syncfs. */
const FSYNC_EACH_LIMIT = 64;
/**
 * Chunk reads decoded at once. Two cores run two decodes; a few more keep the thread pool fed (file
 * reads, zstd, hashing) — `cairn verify` is as fast with 8 as with 16. Each holds a file buffer and
 * a decoded chunk, so this also bounds decode memory however many readers ask at once.
 */
const DEFAULT_READ_CONCURRENCY = 8;

export interface FsChunkStoreOptions {
  /** Chunk reads (file read, decode, verify) in flight at once; more wait in order. */
  readConcurrency?: number;
}

export interface StoredChunk {
  digest: string;
  path: string;
  size: number;
  mtimeMs: number;
}

/** Translates a failed write into ERR_NO_SPACE where that is the reason, so the CLI can say so plainly. */
export function translateWriteError(err: unknown, path: string): unknown {
  const code = systemErrorCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new CairnError('ERR_NO_SPACE', `no space left on the repository's filesystem (writing ${path})`, { file: path }, { cause: err });
  }
  return err;
}

function readError(err: unknown, digest: string, path: string): CairnError {
  if (systemErrorCode(err) === 'ENOENT') {
    return new CairnError('ERR_CHUNK_MISSING', `chunk ${digest} is missing from the repository`, { chunkId: digest, file: path });
  }
  return new CairnError(
    'ERR_IO',
    `cannot read chunk ${digest}: ${(err as Error).message}`,
    { chunkId: digest, file: path },
    { cause: err },
  );
}

/**
 * Chunks as files under `chunks/<first two hex digits>/<digest>`. Writes go to a temp file and are
 * renamed into place, so a reader sees a whole chunk or none. Durability is deferred: the writer calls
 * `syncNewChunks()` once before it publishes a manifest (one syncfs instead of an fsync per chunk).
 */
export class FsChunkStore implements ChunkStore {
  private readonly dir: string;
  private readonly unsynced = new Set<string>();
  private readonly readSlots: ChunkReadSlots;

  constructor(root: string, options: FsChunkStoreOptions = {}) {
    this.dir = join(root, 'chunks');
    this.readSlots = new ChunkReadSlots(Math.max(1, options.readConcurrency ?? DEFAULT_READ_CONCURRENCY));
  }

  chunkPath(digest: string): string {
    if (!DIGEST_PATTERN.test(digest)) throw new CairnError('ERR_INVALID_ARGUMENT', `invalid chunk digest '${digest}'`);
    return join(this.dir, digest.slice(0, 2), digest);
  }

  async readChunk(digest: string): Promise<Buffer> {
    const path = this.chunkPath(digest);
    const slot = await this.readSlots.acquire();
    try {
      const file = await slot.readFile(path).catch((err: unknown) => {
        throw readError(err, digest, path);
      });
      return await decodeChunk(file, digest, { fileIsScratch: true });
    } finally {
      slot.release();
    }
  }

  /**
   * Reads a chunk's verified plaintext into the start of `target` (a buffer of at least the chunk's
   * size, such as a cache slot) and returns that view: a stored-plain chunk is read in place, a zstd
   * one decoded into it. A chunk larger than `target` comes back in a buffer of its own. `targetOf`
   * is called once this read's turn has come (see ChunkReadSlots), not before.
   */
  async readChunkInto(digest: string, targetOf: () => Buffer): Promise<Buffer> {
    const path = this.chunkPath(digest);
    const slot = await this.readSlots.acquire();
    let plain: Buffer | undefined;
    try {
      const target = targetOf();
      const { header, payloadLength } = await slot.readFileInto(path, target).catch((err: unknown) => {
        throw readError(err, digest, path);
      });
      plain = await decodeChunkInto(header, payloadLength, target, digest);
    } finally {
      slot.release();
    }
    return plain ?? this.readChunk(digest);
  }

  async touchChunk(digest: string): Promise<boolean> {
    const now = new Date();
    try {
      await utimes(this.chunkPath(digest), now, now);
      return true;
    } catch (err) {
      if (systemErrorCode(err) === 'ENOENT') return false;
      throw err;
    }
  }

  /** Stores a chunk; returns the bytes it takes on disk. */
  async writeChunk(digest: string, plain: Buffer): Promise<number> {
    const path = this.chunkPath(digest);
    const parts = await encodeChunk(plain);
    const temp = tempPathFor(path);
    try {
      const handle = await open(temp, 'wx', 0o444).catch(async (err: unknown) => {
        if (systemErrorCode(err) !== 'ENOENT') throw err;
        await mkdir(join(this.dir, digest.slice(0, 2)), { recursive: true });
        return open(temp, 'wx', 0o444);
      });
      try {
        await handle.writev(parts);
        // Write-back starts now, overlapping the rest of the backup, instead of all at the final sync.
        startWriteback(handle.fd);
      } finally {
        await handle.close();
      }
      await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw translateWriteError(err, path);
    }
    this.unsynced.add(path);
    return parts.reduce((sum, part) => sum + part.length, 0);
  }

  /** Makes every chunk written through this instance durable. */
  async syncNewChunks(): Promise<void> {
    if (this.unsynced.size === 0) return;
    // syncfs flushes everything dirty on the filesystem, other programs' data too: for a handful of
    // new chunks (a small incremental) an fsync of each is cheaper.
    if (this.unsynced.size > FSYNC_EACH_LIMIT) {
      const handle = await open(this.dir, 'r');
      try {
        if (syncFilesystem(handle.fd)) {
          this.unsynced.clear();
          return;
        }
      } finally {
        await handle.close();
      }
    }
    // fsync each new chunk and each directory that gained one.
    const dirs = new Set<string>();
    for (const path of this.unsynced) {
      const file = await open(path, 'r');
      try {
        await file.sync();
      } finally {
        await file.close();
      }
      dirs.add(join(path, '..'));
    }
    for (const dir of dirs) {
      const handle = await open(dir, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    this.unsynced.clear();
  }

  /** Every stored chunk file (temp files excluded). */
  async *listChunks(): AsyncIterable<StoredChunk> {
    let prefixes: string[];
    try {
      prefixes = (await readdir(this.dir)).filter((name) => /^[0-9a-f]{2}$/.test(name)).sort();
    } catch (err) {
      if (systemErrorCode(err) === 'ENOENT') return;
      throw err;
    }
    for (const prefix of prefixes) {
      const names = await readdir(join(this.dir, prefix));
      for (const name of names) {
        if (!DIGEST_PATTERN.test(name)) continue;
        const path = join(this.dir, prefix, name);
        try {
          const info = await stat(path);
          yield { digest: name, path, size: info.size, mtimeMs: info.mtimeMs };
        } catch (err) {
          if (systemErrorCode(err) !== 'ENOENT') throw err;
        }
      }
    }
  }

  /**
   * Puts back chunks a crashed GC had renamed aside (`.gc-<digest>`) but not yet judged; the next GC
   * decides on them again. Returns how many were restored.
   */
  async restoreAsideChunks(): Promise<number> {
    let restored = 0;
    const prefixes = await readdir(this.dir).catch(() => [] as string[]);
    for (const prefix of prefixes) {
      const names = await readdir(join(this.dir, prefix)).catch(() => [] as string[]);
      for (const name of names) {
        const digest = name.startsWith('.gc-') ? name.slice(4) : '';
        if (!DIGEST_PATTERN.test(digest)) continue;
        const aside = join(this.dir, prefix, name);
        if (names.includes(digest)) await unlink(aside).catch(() => undefined);
        else if (
          await rename(aside, join(this.dir, prefix, digest)).then(
            () => true,
            () => false,
          )
        )
          restored++;
      }
    }
    return restored;
  }

  /** Temp files left by writers that died (only those older than `olderThanMs`). */
  async *listStaleTempFiles(olderThanMs: number): AsyncIterable<string> {
    let prefixes: string[];
    try {
      prefixes = await readdir(this.dir);
    } catch {
      return;
    }
    for (const prefix of prefixes) {
      const names = await readdir(join(this.dir, prefix)).catch(() => [] as string[]);
      for (const name of names) {
        if (!name.startsWith('.tmp-')) continue;
        const path = join(this.dir, prefix, name);
        const info = await stat(path).catch(() => undefined);
        if (info && info.mtimeMs < olderThanMs) yield path;
      }
    }
  }
}
