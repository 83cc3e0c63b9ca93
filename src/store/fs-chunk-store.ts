import { link, lstat, lutimes, open, readdir, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CairnError, systemErrorCode } from '../core/errors.js';
import type { ChunkStore } from '../core/chunk-store.js';
import { decodeChunk, decodeChunkInto, encodeChunk } from './chunk-format.js';
import { ChunkReadSlots } from './chunk-read-slots.js';
import { tempPathFor } from '../util/atomic-file.js';
import { startWriteback, syncFilesystem } from '../util/native.js';
import { translateWriteError } from './write-error.js';
import { CHUNK_FILE } from './chunk-format.js';
import { writeMark, type WriteMark } from './chunk-mark.js';
import { RepositoryAccess } from './repository-access.js';

export { translateWriteError } from './write-error.js';

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
  /** Modes of new files and directories (default: umask behaviour, as repositories without an access setting). */
  access?: RepositoryAccess;
  /** The repository's chunk size: no chunk file may be larger than its header plus this. */
  maxPlainLength?: number;
}

/** What writing one chunk file did. */
export interface ChunkFileWrite {
  bytes: number;
  /**
   * Set when this call created the chunk (its hard link won) and the file carries `mark`: the
   * writer may later take it back (see ChunkWriteSession.discard). Unset when the chunk was there
   * already, or the filesystem cannot hold the mark or make hard links.
   */
  owned?: WriteMark;
}

export interface StoredChunk {
  digest: string;
  path: string;
  size: number;
  mtimeMs: number;
}

function readError(err: unknown, digest: string, path: string): CairnError {
  if (err instanceof CairnError) return err;
  if (systemErrorCode(err) === 'ELOOP') {
    return new CairnError('ERR_CHUNK_CORRUPT', `chunk ${digest} is damaged: its file is a symbolic link`, { chunkId: digest, file: path });
  }
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
  private readonly access: RepositoryAccess;
  private readonly realPrefixes = new Set<string>();

  constructor(root: string, options: FsChunkStoreOptions = {}) {
    this.dir = join(root, 'chunks');
    this.access = options.access ?? new RepositoryAccess(undefined);
    this.readSlots = new ChunkReadSlots(
      Math.max(1, options.readConcurrency ?? DEFAULT_READ_CONCURRENCY),
      CHUNK_FILE.HEADER_SIZE + (options.maxPlainLength ?? CHUNK_FILE.MAX_PLAIN_LENGTH),
    );
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
      // lutimes: a chunk name that is a symlink is touched itself, never what it points to.
      await lutimes(this.chunkPath(digest), now, now);
      return true;
    } catch (err) {
      if (systemErrorCode(err) === 'ENOENT') return false;
      throw err;
    }
  }

  /** Stores a chunk; returns the bytes it takes on disk. */
  async writeChunk(digest: string, plain: Buffer): Promise<number> {
    return (await this.writeChunkFile(digest, plain)).bytes;
  }

  /**
   * Writes a chunk file: temp file, then a hard link to the chunk's name, which fails if the name
   * exists (rename would replace it). Exactly one writer creates each chunk file, so "I created it"
   * is something a writer can know and act on later; a writer that finds the chunk there touches
   * it instead. With `markMs` the new file's mtime is set to that mark (see ChunkWriteSession).
   */
  async writeChunkFile(digest: string, plain: Buffer, markMs?: number): Promise<ChunkFileWrite> {
    const path = this.chunkPath(digest);
    const parts = await encodeChunk(plain);
    const bytes = parts.reduce((sum, part) => sum + part.length, 0);
    await this.checkPrefixDir(digest.slice(0, 2));
    for (let attempt = 0; ; attempt++) {
      const temp = tempPathFor(path);
      let mark: WriteMark | undefined;
      let created: boolean;
      try {
        const handle = await open(temp, 'wx', this.access.fileMode('immutable')).catch(async (err: unknown) => {
          if (systemErrorCode(err) !== 'ENOENT') throw err;
          await this.access.mkdir(join(this.dir, digest.slice(0, 2))).catch(async (mkdirErr: unknown) => {
            // chunks/ itself is missing (a store opened on a bare directory).
            if (systemErrorCode(mkdirErr) !== 'ENOENT') throw mkdirErr;
            await this.access.mkdir(this.dir);
            await this.access.mkdir(join(this.dir, digest.slice(0, 2)));
          });
          return open(temp, 'wx', this.access.fileMode('immutable'));
        });
        try {
          await this.access.setFileMode(handle, 'immutable');
          await handle.writev(parts);
          // Write-back starts now, overlapping the rest of the backup, instead of all at the final sync.
          startWriteback(handle.fd);
          if (markMs !== undefined) mark = await writeMark(handle, markMs);
        } finally {
          await handle.close();
        }
        created = await this.linkIntoPlace(temp, path);
      } catch (err) {
        await unlink(temp).catch(() => undefined);
        throw translateWriteError(err, path);
      }
      this.unsynced.add(path);
      if (created) return { bytes, ...(mark ? { owned: mark } : {}) };
      // Someone else created it meanwhile: use theirs. If it vanished again (a failed writer took
      // it back between our link and our touch), write it anew.
      if (await this.touchChunk(digest)) return { bytes };
      if (attempt >= 2) {
        throw new CairnError('ERR_IO', `chunk ${digest} vanished three times while being stored`, { chunkId: digest, file: path });
      }
    }
  }

  /** Links `temp` to `path` and removes `temp`; false when `path` existed. */
  private async linkIntoPlace(temp: string, path: string): Promise<boolean> {
    try {
      await link(temp, path);
    } catch (err) {
      const code = systemErrorCode(err);
      if (code === 'EEXIST') {
        await unlink(temp);
        return false;
      }
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw err;
      // A filesystem without hard links: the old rename, whose writer cannot claim the chunk.
      await rename(temp, path);
      return false;
    }
    await unlink(temp);
    return true;
  }

  /**
   * Takes back a chunk file this process created with `mark`, unless someone may rely on it.
   * The sweep protocol of GC (store/gc.ts): rename aside, re-check, delete. Why it cannot lose
   * another writer's data: a writer that relies on a chunk it did not create has touched it
   * (utimes to "now") before relying on it (point-writer touches every chunk it reuses; the only
   * chunks used untouched are those of a published base point, and a chunk this writer created
   * is in no published point unless another writer touched it first). So:
   * - a touch before our rename changed the mtime away from the mark (a touch sets a time derived
   *   from milliseconds; the mark sits half a millisecond off, which no touch can produce): the
   *   re-check sees it and the chunk goes back;
   * - a touch after our rename finds no file (ENOENT): that writer writes the chunk anew, under
   *   the chunk's name, which our unlink of the aside name never touches.
   * Returns true when the chunk was removed.
   */
  async discardOwnedChunk(digest: string, mark: WriteMark): Promise<boolean> {
    const path = this.chunkPath(digest);
    const aside = join(dirname(path), `.gc-${digest}`);
    try {
      await rename(path, aside);
    } catch {
      return false; // gone already
    }
    const info = await lstat(aside, { bigint: true }).catch(() => undefined);
    if (info === undefined) return false; // a GC starting now put it back (restoreAsideChunks)
    if (info.mtimeNs !== mark.mtimeNs) {
      // Someone touched it: it stays. A link, not a rename: a copy written meanwhile stays as it is.
      await link(aside, path).catch(() => undefined);
      await unlink(aside).catch(() => undefined);
      return false;
    }
    await unlink(aside).catch(() => undefined);
    this.unsynced.delete(path);
    return true;
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

  /**
   * The `<xx>` directories, sorted, only real directories: a symlink there must not make gc rename
   * or delete files elsewhere (readdir's types do not follow symlinks).
   */
  private async prefixDirs(): Promise<string[]> {
    try {
      const entries = await readdir(this.dir, { withFileTypes: true });
      return entries
        .filter((entry) => entry.isDirectory() && /^[0-9a-f]{2}$/.test(entry.name))
        .map((entry) => entry.name)
        .sort();
    } catch (err) {
      if (systemErrorCode(err) === 'ENOENT') return [];
      throw err;
    }
  }

  /** Refuses to write into a `<xx>` directory that is a symlink (checked once per directory). */
  private async checkPrefixDir(prefix: string): Promise<void> {
    if (this.realPrefixes.has(prefix)) return;
    for (const path of [this.dir, join(this.dir, prefix)]) {
      const info = await lstat(path).catch((err: unknown) => {
        if (systemErrorCode(err) === 'ENOENT') return undefined; // mkdir makes a real one
        throw err;
      });
      if (info === undefined) return;
      if (!info.isDirectory()) {
        throw new CairnError('ERR_FORMAT_INVALID', `${path} is damaged: it is not a directory (a symbolic link?)`, { file: path });
      }
    }
    this.realPrefixes.add(prefix);
  }

  /** Every stored chunk file (temp files excluded). */
  async *listChunks(): AsyncIterable<StoredChunk> {
    for (const prefix of await this.prefixDirs()) {
      const names = await readdir(join(this.dir, prefix));
      for (const name of names) {
        if (!DIGEST_PATTERN.test(name)) continue;
        const path = join(this.dir, prefix, name);
        try {
          const info = await lstat(path);
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
    for (const prefix of await this.prefixDirs()) {
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
    for (const prefix of await this.prefixDirs()) {
      const names = await readdir(join(this.dir, prefix)).catch(() => [] as string[]);
      for (const name of names) {
        if (!name.startsWith('.tmp-')) continue;
        const path = join(this.dir, prefix, name);
        const info = await lstat(path).catch(() => undefined);
        if (info && info.mtimeMs < olderThanMs) yield path;
      }
    }
  }
}
