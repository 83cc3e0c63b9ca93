import { createRequire } from 'node:module';
import { createHash, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CairnError } from '../core/errors.js';

/**
 * Layout of one chunk file (docs/formats/chunk.md). Big-endian header of 12 bytes, then the payload.
 *   0  4  magic "CRNC"
 *   4  1  format version (1)
 *   5  1  codec: 0 = stored plain, 1 = zstd frame
 *   6  2  reserved, zero
 *   8  4  plaintext length (u32be)
 *  12  …  payload
 */
export const CHUNK_FILE = {
  MAGIC: Buffer.from('CRNC', 'ascii'),
  VERSION: 1,
  HEADER_SIZE: 12,
  CODEC_PLAIN: 0,
  CODEC_ZSTD: 1,
  /** Largest plaintext a chunk may hold (the largest chunk size a repository may choose). */
  MAX_PLAIN_LENGTH: 8 * 1024 * 1024,
} as const;

// The package's JS wrapper drops the level argument; its native binding takes it. Both run on the
// thread pool, off the main thread.
const zstd = loadZstdBinding() as {
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

/**
 * zstd level 3 (zstd's default). Measured on the ingest benchmark image: level 1 stores 1.2 % more
 * than level 3 (more than restic's repository) for about 8 % less CPU; levels 4-5 gain < 0.1 %.
 */
const ZSTD_LEVEL = 3;
/** Keep the compressed form only when it saves at least this fraction. */
const MIN_SAVING = 1 / 32;

/**
 * Decodes one zstd frame for another layer (qcow2's zstd-compressed clusters): the package lives here
 * only. The caller checks the frame's declared content size first, so the binding's output is bounded.
 */
export function zstdDecompress(frame: Buffer): Promise<Buffer> {
  return zstd.decompress(frame);
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * SHA-256 on the thread pool (WebCrypto runs digests as async jobs): on two cores, hashing every
 * chunk on the main thread left the pool idle while the main thread was the bottleneck. Up to
 * 64 KiB hashing in place is cheaper than WebCrypto's copy and job (45 µs against 70-130 µs of
 * main-thread time each, measured on 328 blocks of 64 KiB).
 */
export async function sha256HexAsync(data: Buffer): Promise<string> {
  if (data.length <= 64 * 1024) return sha256Hex(data);
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex');
}

function header(codec: number, plainLength: number): Buffer {
  const buf = Buffer.alloc(CHUNK_FILE.HEADER_SIZE);
  CHUNK_FILE.MAGIC.copy(buf, 0);
  buf.writeUInt8(CHUNK_FILE.VERSION, 4);
  buf.writeUInt8(codec, 5);
  buf.writeUInt32BE(plainLength, 8);
  return buf;
}

/** Encodes a chunk for storage, compressing only where it pays. Returns the header and the payload. */
/** Probe size for incompressible data: compressing a sample is much cheaper than the whole chunk. */
const PROBE_LENGTH = 32 * 1024;

export async function encodeChunk(plain: Buffer): Promise<Buffer[]> {
  // Random or already-compressed data (encrypted volumes, media, compressed archives) is common in
  // disk images: when a sample from the middle does not compress at all, store the chunk plain
  // without paying for a full zstd pass.
  if (plain.length >= 4 * PROBE_LENGTH) {
    const middle = Math.floor(plain.length / 2);
    const sample = plain.subarray(middle, middle + PROBE_LENGTH);
    const probe = await zstd.compress(sample, 1);
    if (probe.length >= sample.length * (1 - MIN_SAVING / 4)) return [header(CHUNK_FILE.CODEC_PLAIN, plain.length), plain];
  }
  const packed = await zstd.compress(plain, ZSTD_LEVEL);
  if (packed.length <= plain.length * (1 - MIN_SAVING)) {
    return [header(CHUNK_FILE.CODEC_ZSTD, plain.length), packed];
  }
  return [header(CHUNK_FILE.CODEC_PLAIN, plain.length), plain];
}

type Corruption = (reason: string, cause?: unknown) => CairnError;

/** ERR_CHUNK_CORRUPT naming the chunk, for every way a chunk file can be damaged. */
function corruption(digest: string): Corruption {
  return (reason, cause) => new CairnError('ERR_CHUNK_CORRUPT', `chunk ${digest} is damaged: ${reason}`, { chunkId: digest }, { cause });
}

/** Checks a chunk file's header (magic, version, plaintext bound) and returns its codec and plaintext length. */
function parseChunkHeader(header: Buffer, corrupt: Corruption): { codec: number; plainLength: number } {
  if (header.length < CHUNK_FILE.HEADER_SIZE || !header.subarray(0, 4).equals(CHUNK_FILE.MAGIC)) throw corrupt('bad header');
  const version = header.readUInt8(4);
  if (version !== CHUNK_FILE.VERSION) throw corrupt(`unknown format version ${version}`);
  const plainLength = header.readUInt32BE(8);
  if (plainLength > CHUNK_FILE.MAX_PLAIN_LENGTH) throw corrupt(`length ${plainLength} too large`);
  return { codec: header.readUInt8(5), plainLength };
}

/** zstd-decodes a payload that must yield `plainLength` bytes. */
async function inflate(payload: Buffer, plainLength: number, corrupt: Corruption): Promise<Buffer> {
  let plain: Buffer;
  try {
    plain = await zstd.decompress(payload);
  } catch (err) {
    throw corrupt('zstd frame does not decode', err);
  }
  if (plain.length !== plainLength) throw corrupt(`length ${plain.length}, header says ${plainLength}`);
  return plain;
}

async function verifyDigest(plain: Buffer, digest: string, corrupt: Corruption): Promise<void> {
  if ((await sha256HexAsync(plain)) !== digest) throw corrupt('content does not match its digest');
}

/**
 * Decodes a chunk file and verifies it against its digest. Any mismatch is ERR_CHUNK_CORRUPT naming
 * the chunk; damaged data is never returned. With `fileIsScratch` the result never shares memory with
 * `file` (a stored-plain payload is copied out), so the caller may reuse `file` once this resolves.
 */
export async function decodeChunk(file: Buffer, digest: string, options: { fileIsScratch?: boolean } = {}): Promise<Buffer> {
  const corrupt = corruption(digest);
  const { codec, plainLength } = parseChunkHeader(file, corrupt);
  const payload = file.subarray(CHUNK_FILE.HEADER_SIZE);
  if (codec === CHUNK_FILE.CODEC_PLAIN) {
    if (payload.length !== plainLength) throw corrupt(`length ${payload.length}, header says ${plainLength}`);
    // Checked before the copy: a damaged chunk costs no allocation.
    await verifyDigest(payload, digest, corrupt);
    if (!options.fileIsScratch) return payload;
    const plain = Buffer.allocUnsafeSlow(plainLength);
    payload.copy(plain);
    return plain;
  }
  if (codec !== CHUNK_FILE.CODEC_ZSTD) throw corrupt(`unknown codec ${codec}`);
  const plain = await inflate(payload, plainLength, corrupt);
  await verifyDigest(plain, digest, corrupt);
  return plain;
}

/**
 * Decodes a chunk whose header was read apart and whose payload (`payloadLength` bytes) was read into
 * the start of `target`, leaving the verified plaintext at the start of `target`; returns that view.
 * Returns undefined when the plaintext or payload does not fit in `target` (the caller then reads the
 * chunk another way). Damage is ERR_CHUNK_CORRUPT as in decodeChunk.
 */
export async function decodeChunkInto(header: Buffer, payloadLength: number, target: Buffer, digest: string): Promise<Buffer | undefined> {
  const corrupt = corruption(digest);
  const { codec, plainLength } = parseChunkHeader(header, corrupt);
  if (plainLength > target.length || payloadLength > target.length) return undefined;
  const plain = target.subarray(0, plainLength);
  if (codec === CHUNK_FILE.CODEC_PLAIN) {
    if (payloadLength !== plainLength) throw corrupt(`length ${payloadLength}, header says ${plainLength}`);
  } else if (codec === CHUNK_FILE.CODEC_ZSTD) {
    // The binding allocates its output; the caller's buffer is reused memory, so the copy is cheap
    // and the binding's buffer dies young.
    (await inflate(target.subarray(0, payloadLength), plainLength, corrupt)).copy(target);
  } else {
    throw corrupt(`unknown codec ${codec}`);
  }
  await verifyDigest(plain, digest, corrupt);
  return plain;
}
