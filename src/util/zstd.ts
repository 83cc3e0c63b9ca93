// The one home of the zstd binding: chunk files (src/store), and later foreign formats that carry
// zstd (qcow2 clusters, btrfs extents) decode through it. Every call runs on the thread pool.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CairnError } from '../core/errors.js';

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

const ZSTD_MAGIC = 0xfd2fb528;

/**
 * The content size a zstd frame header declares (RFC 8878 §3.1.1.1), undefined when the frame does
 * not say, or ERR_FORMAT_INVALID when it is not a zstd frame at all.
 */
export function zstdDeclaredSize(frame: Buffer): number | undefined {
  if (frame.length < 6 || frame.readUInt32LE(0) !== ZSTD_MAGIC) {
    throw new CairnError('ERR_FORMAT_INVALID', 'not a zstd frame');
  }
  const descriptor = frame[4]!;
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const dictIdFlag = descriptor & 3;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (fcsBytes === 0) return undefined;
  const at = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictIdFlag]!;
  if (frame.length < at + fcsBytes) throw new CairnError('ERR_FORMAT_INVALID', 'zstd frame header is truncated');
  switch (fcsBytes) {
    case 1:
      return frame[at]!;
    case 2:
      return frame.readUInt16LE(at) + 256;
    case 4:
      return frame.readUInt32LE(at);
    default: {
      const value = frame.readBigUInt64LE(at);
      return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
    }
  }
}

/**
 * Decodes one zstd frame that must yield at most `maxLength` bytes. A frame that declares more is
 * refused before anything is allocated; the result is checked after. Untrusted frames (from guest
 * images and foreign formats) go through here, never straight to the binding.
 */
export async function zstdDecompress(frame: Buffer, maxLength: number): Promise<Buffer> {
  const declared = zstdDeclaredSize(frame);
  if (declared !== undefined && declared > maxLength) {
    throw new CairnError('ERR_FORMAT_INVALID', `zstd frame declares ${declared} bytes, more than the ${maxLength} expected`);
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
