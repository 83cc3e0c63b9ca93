// The one home of the zstd binding: chunk files (src/store), and later foreign formats that carry
// zstd (qcow2 clusters, btrfs extents) decode through it. Every call runs on the thread pool.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CairnError } from '../core/errors.js';
import { ZSTD_FRAME, zstdDecodedBound } from './zstd-frame.js';

// The package's JS wrapper drops the level argument; its native binding takes it.
const binding = loadZstdBinding() as {
  compress(data: Buffer, level?: number): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
};

/**
 * The binding the package's loader (`@mongodb-js/zstd/bindings`) would pick, without its musl test on
 * glibc Linux: that calls process.report.getReport(), ~5 ms of every start. The process's own memory
 * map answers it: glibc's libc (libc.so.6, or libc-2.N.so before glibc 2.34) is mapped. Anything else,
 * or a glibc build that does not load, goes to the package's loader.
 */
function loadZstdBinding(): unknown {
  const require = createRequire(import.meta.url);
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    try {
      if (/\/(libc\.so\.6|libc-2\.\d+\.so)$/m.test(readFileSync('/proc/self/maps', 'latin1'))) {
        return require(`@mongodb-js/zstd-linux-${process.arch}-gnu`);
      }
    } catch {
      // No /proc, or no glibc build installed: the loader decides (and reports its own errors).
    }
  }
  return require('@mongodb-js/zstd/bindings');
}

export function zstdCompress(data: Buffer, level: number): Promise<Buffer> {
  return binding.compress(data, level);
}

/**
 * How far a frame's block headers may promise more than the expected length before it is refused
 * undecoded. Cairn's encoder (zstd level 3, no block splitting) promises exactly the length rounded
 * up to 128 KiB blocks; zstd's optimal levels (16 and up) split blocks finer and promise up to about
 * 10 times that (measured with zstd 1.5 on text, test/unit/util/zstd-frame). A decode then allocates
 * at most 16 times the expected length, where a crafted frame of a few kilobytes would otherwise
 * decode to gigabytes: the binding grows its output to whatever the frame decodes to.
 */
const MAX_BOUND_FACTOR = 16;

/**
 * Decodes one zstd frame (nothing after it; with `frames: 'many'`, frames back to back) that must
 * yield at most `maxLength` bytes. Untrusted frames (chunk files, foreign formats, guest filesystems)
 * go through here, never straight to the binding: the frames' own headers bound the output before
 * anything is decoded, and the result is checked after. Errors are ERR_FORMAT_INVALID.
 */
export async function zstdDecompress(frame: Buffer, maxLength: number, options: { frames?: 'one' | 'many' } = {}): Promise<Buffer> {
  const bound = zstdDecodedBound(frame, options);
  if ('invalid' in bound) throw new CairnError('ERR_FORMAT_INVALID', bound.invalid);
  // Each frame may end in a partial block: frames back to back (qcow2 clusters) get one block more each.
  const blocks = (Math.ceil(maxLength / ZSTD_FRAME.MAX_BLOCK_SIZE) || 1) + bound.frames - 1;
  if (bound.bound > MAX_BOUND_FACTOR * blocks * ZSTD_FRAME.MAX_BLOCK_SIZE) {
    throw new CairnError('ERR_FORMAT_INVALID', `its zstd blocks could decode to ${bound.bound} bytes, at most ${maxLength} expected`);
  }
  let plain: Buffer;
  try {
    plain = await binding.decompress(frame);
  } catch (err) {
    throw new CairnError('ERR_FORMAT_INVALID', `zstd frame does not decode: ${(err as Error).message}`, {}, { cause: err });
  }
  if (plain.length > maxLength)
    throw new CairnError('ERR_FORMAT_INVALID', `zstd frame yields ${plain.length} bytes, more than ${maxLength}`);
  return plain;
}
