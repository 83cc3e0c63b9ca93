import { close, constants, fstat, open, read, readv, type Stats } from 'node:fs';
import { CairnError } from '../core/errors.js';
import { CHUNK_FILE } from './chunk-format.js';

/** A read slot's buffer starts this large and grows to the largest chunk file seen (plus slack). */
const INITIAL_SLOT_BYTES = 64 * 1024;
/** Slack past the largest file seen, so a file of exactly that size does not look truncated. */
const SLOT_SLACK_BYTES = 4096;
/**
 * Chunk files are opened without following a symlink and without waiting on a FIFO (O_NONBLOCK),
 * then checked with fstat: a repository's writer must not make a reader open /dev/zero or a file
 * outside the repository, or hang on a pipe.
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** One permission to read and decode a chunk, with a reusable buffer for the chunk file's bytes. */
export interface ReadSlot {
  /** The whole chunk file, a view of the slot's buffer: valid only until `release()`. */
  readFile(path: string): Promise<Buffer>;
  /**
   * Reads a chunk file's header into the slot's buffer and its payload straight into `target`, in
   * one system call. `payloadLength` may exceed `target.length` (the file did not fit).
   */
  readFileInto(path: string, target: Buffer): Promise<{ header: Buffer; payloadLength: number }>;
  release(): void;
}

class Slot implements ReadSlot {
  buffer: Buffer = Buffer.allocUnsafeSlow(INITIAL_SLOT_BYTES);

  constructor(private readonly owner: ChunkReadSlots) {}

  async readFile(path: string): Promise<Buffer> {
    const fd = await openChunkFile(path);
    try {
      const size = await this.owner.checkedSize(fd, path);
      // One byte of room past the size tells a file that grew since fstat (the decoder refuses it).
      if (this.buffer.length <= size) this.buffer = Buffer.allocUnsafeSlow(size + SLOT_SLACK_BYTES);
      const length = await readAt(fd, this.buffer);
      return this.buffer.subarray(0, length);
    } finally {
      // Nothing waits on the close: a read-only descriptor has nothing left to report.
      close(fd, () => undefined);
    }
  }

  async readFileInto(path: string, target: Buffer): Promise<{ header: Buffer; payloadLength: number }> {
    const fd = await openChunkFile(path);
    try {
      await this.owner.checkedSize(fd, path);
      const header = this.buffer.subarray(0, CHUNK_FILE.HEADER_SIZE);
      // One more byte than fits tells whether the payload was longer than `target`.
      const rest = this.buffer.subarray(CHUNK_FILE.HEADER_SIZE, CHUNK_FILE.HEADER_SIZE + 1);
      const length = await new Promise<number>((resolve, reject) =>
        readv(fd, [header, target, rest], 0, (err, n) => (err ? reject(err) : resolve(n))),
      );
      return { header: header.subarray(0, Math.min(length, header.length)), payloadLength: Math.max(0, length - header.length) };
    } finally {
      close(fd, () => undefined);
    }
  }

  release(): void {
    this.owner.giveBack(this);
  }
}

function openChunkFile(path: string): Promise<number> {
  return new Promise<number>((resolve, reject) => open(path, OPEN_FLAGS, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function readAt(fd: number, buffer: Buffer): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buffer, 0, buffer.length, 0, (err, n) => (err ? reject(err) : resolve(n))));
}

/**
 * Bounds how many chunk files are read and decoded at once, and reuses their read buffers. Each chunk
 * read used to allocate its file's bytes afresh (readFile), and every load in flight (read-ahead of
 * several connections, one per request) held a file buffer, a decoded chunk and a hash input at the
 * same time: on two cores more than a few concurrent decodes buy nothing, while their temporaries made
 * up most of the server's memory beyond its chunk cache. Waiters are served in order.
 */
export class ChunkReadSlots {
  private readonly idle: Slot[] = [];
  private created = 0;
  private readonly waiters: ((slot: Slot) => void)[] = [];

  /** `maxFileBytes`: the chunk file header plus the repository's chunk size (compression never grows a chunk). */
  constructor(
    readonly limit: number,
    readonly maxFileBytes = CHUNK_FILE.HEADER_SIZE + CHUNK_FILE.MAX_PLAIN_LENGTH,
  ) {}

  /** @internal The size of an open chunk file, refused unless it is a regular file of a size a chunk can have. */
  async checkedSize(fd: number, path: string): Promise<number> {
    const info = await new Promise<Stats>((resolve, reject) => fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
    const refuse = (reason: string) => new CairnError('ERR_CHUNK_CORRUPT', `chunk file ${path} is damaged: ${reason}`, { file: path });
    if (!info.isFile()) throw refuse('it is not a regular file');
    if (info.size > this.maxFileBytes) throw refuse(`it holds ${info.size} bytes, more than a chunk file of this repository can`);
    return info.size;
  }

  acquire(): Promise<ReadSlot> {
    const slot = this.idle.pop() ?? (this.created < this.limit ? (this.created++, new Slot(this)) : undefined);
    if (slot) return Promise.resolve(slot);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** @internal */
  giveBack(slot: Slot): void {
    const next = this.waiters.shift();
    if (next) next(slot);
    else this.idle.push(slot);
  }
}
