import { open, type FileHandle } from 'node:fs/promises';
import { CairnError, systemErrorCode } from '../core/errors.js';

/** Virtual sizes above this (64 TiB) are refused: a hostile header must not make the writer size an index by it. */
export const MAX_IMAGE_SIZE = 64 * 1024 ** 4;

/**
 * An image file read at given offsets (qcow2, VHD, rbd export files): every read is checked against
 * the file's size before a buffer is allocated, and a short read is a clear "truncated" error.
 */
export class ImageFile {
  bytesRead = 0;

  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    readonly size: number,
    /** Device and inode, to notice a backing chain that comes back to a file already open. */
    readonly identity: string,
  ) {}

  static async open(path: string, what = 'image'): Promise<ImageFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      const reason = systemErrorCode(err) === 'ENOENT' ? 'no such file' : (err as Error).message;
      throw new CairnError('ERR_SOURCE', `cannot open ${what} ${path}: ${reason}`, { file: path }, { cause: err });
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new CairnError('ERR_SOURCE', `${what} ${path} is not a regular file`, { file: path });
      return new ImageFile(handle, path, info.size, `${info.dev}:${info.ino}`);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Reads exactly `length` bytes at `offset`; the range must lie inside the file. */
  async read(offset: number, length: number, what: string): Promise<Buffer> {
    const data = Buffer.allocUnsafe(this.checkRange(offset, length, what));
    await this.readInto(data, 0, offset, length, what);
    return data;
  }

  /** Reads exactly `length` bytes at `offset` into `target` at `targetOffset`. */
  async readInto(target: Buffer, targetOffset: number, offset: number, length: number, what: string): Promise<void> {
    this.checkRange(offset, length, what);
    let filled = 0;
    while (filled < length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.handle.read(target, targetOffset + filled, length - filled, offset + filled));
      } catch (err) {
        throw new CairnError('ERR_SOURCE', `cannot read ${this.path} at offset ${offset + filled}: ${(err as Error).message}`, {
          file: this.path,
          offset: offset + filled,
        });
      }
      if (bytesRead === 0) throw this.truncated(offset + filled, what);
      filled += bytesRead;
      this.bytesRead += bytesRead;
    }
  }

  /** The length itself when [offset, offset + length) lies inside the file, else a clear error. */
  checkRange(offset: number, length: number, what: string): number {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new CairnError(
        'ERR_FORMAT_INVALID',
        `${this.path}: ${what} at offset ${offset} (${length} bytes) lies outside the ${this.size}-byte file (truncated or damaged image)`,
        { file: this.path, offset },
      );
    }
    return length;
  }

  private truncated(offset: number, what: string): CairnError {
    return new CairnError('ERR_SOURCE', `${this.path} is truncated: it ended at offset ${offset} while reading ${what}`, {
      file: this.path,
      offset,
    });
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
