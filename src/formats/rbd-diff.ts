import { CairnError } from '../core/errors.js';

/**
 * Ceph RBD streams (ceph doc/dev/rbd-diff.rst, doc/dev/rbd-export.rst, src/tools/rbd/Utils.h and
 * action/Export.cc). Integers little-endian; a name is a le32 length then its bytes.
 *
 * `rbd export-diff` (v1): banner "rbd diff v1\n", then records of a 1-byte tag:
 *   'f' from-snap name, 't' to-snap name, 's' le64 image size (metadata, all before data);
 *   'w' le64 offset, le64 length, data; 'z' le64 offset, le64 length (reads as zeros); 'e' end.
 * v2 ("rbd diff v2\n"): every tag but 'e' is followed by a le64 payload length (unknown tags are
 *   skipped by it); 'p' (snapshot protected, 1 byte) appears when a to-snap exists. Ceph 16 writes
 *   'p' with a length of 8 but a 1-byte body, and its own importer reads 1 byte whatever the length
 *   says; so does this parser.
 * `rbd export --export-format 2`: banner "rbd image v2\n", v2-style records 'O' order, 'T' features,
 *   'U' stripe unit, 'C' stripe count, 'M' metadata…, bare 'E'; then "rbd image diffs v2\n" (in the
 *   code, missing from the .rst), a le64 count, and that many v2 diffs (nothing→snap1, …, →head).
 *
 * The parser is a generator that asks for bytes: `read` requests are small and answered whole;
 * `payload` requests (record data, skipped records) are answered piece by piece, as the bytes
 * arrive, so a record is never buffered whole (lengths are le64).
 */
export const RBD_DIFF = {
  BANNER_DIFF_V1: Buffer.from('rbd diff v1\n', 'latin1'),
  BANNER_DIFF_V2: Buffer.from('rbd diff v2\n', 'latin1'),
  BANNER_IMAGE_V2: Buffer.from('rbd image v2\n', 'latin1'),
  BANNER_IMAGE_DIFFS_V2: Buffer.from('rbd image diffs v2\n', 'latin1'),
  /** rbd's importer caps snapshot names at 4096 bytes. */
  MAX_NAME_LENGTH: 4096,
  /** More diffs than this in one export (snapshots + 1) is taken as damage. */
  MAX_DIFFS: 65536,
  /** Image sizes above 2^53 cannot be described; rbd images are far below that in practice. */
  MAX_IMAGE_SIZE: Number.MAX_SAFE_INTEGER,
} as const;

/** Record tags (Utils.h: RBD_DIFF_*, RBD_EXPORT_*). */
export const RBD_TAG = {
  FROM_SNAP: 0x66, // 'f'
  TO_SNAP: 0x74, // 't'
  SIZE: 0x73, // 's'
  WRITE: 0x77, // 'w'
  ZERO: 0x7a, // 'z'
  END: 0x65, // 'e'
  SNAP_PROTECTION: 0x70, // 'p'
  IMAGE_ORDER: 0x4f, // 'O'
  IMAGE_FEATURES: 0x54, // 'T'
  IMAGE_STRIPE_UNIT: 0x55, // 'U'
  IMAGE_STRIPE_COUNT: 0x43, // 'C'
  IMAGE_META: 0x4d, // 'M'
  IMAGE_FORMAT: 0x46, // 'F'
  IMAGE_END: 0x45, // 'E'
} as const;

export type RbdEvent =
  /** An export's image header, before its diffs. */
  | { type: 'image'; order: number | undefined; diffCount: number }
  /** One diff's metadata, complete: it comes before the diff's first data record. */
  | { type: 'diff'; index: number; version: 1 | 2; fromSnap?: string; toSnap?: string; size: number }
  /** Bytes of a 'w' record as they arrive (`data` absent when the caller skipped them); `position` is where they are in the stream. */
  | { type: 'data'; offset: number; length: number; data?: Buffer; position: number }
  | { type: 'zero'; offset: number; length: number }
  | { type: 'diff-end'; index: number };

/** `read`: exactly n bytes, answered in one buffer; `payload`: up to n bytes, answered as they come (or skipped: a count). */
export type RbdRequest = { read: number } | { payload: number };
type Parser = Generator<RbdRequest, void, Buffer | number>;
type Emit = (event: RbdEvent) => void;

function invalid(message: string, position?: number): CairnError {
  return new CairnError('ERR_FORMAT_INVALID', `rbd stream: ${message}${position !== undefined ? ` (at byte ${position})` : ''}`, {
    ...(position !== undefined ? { offset: position } : {}),
  });
}

/** Little-endian u64 as a number, refusing values above 2^53 (through one check, like util/bytes). */
function le64(buf: Buffer, at: number, what: string): number {
  const value = buf.readBigUInt64LE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${what} ${value} is beyond 2^53`);
  return Number(value);
}

/** Shared by the parsers: where the stream is, for messages and data positions. */
class Cursor {
  position = 0;
}

function* read(cursor: Cursor, length: number): Generator<RbdRequest, Buffer, Buffer | number> {
  const answer = yield { read: length };
  if (typeof answer === 'number' || answer.length !== length) throw new Error('rbd parser: a read request was answered short');
  cursor.position += length;
  return answer;
}

/** Streams `length` payload bytes to `each` (with their stream position), or lets the caller skip them. */
function* payload(
  cursor: Cursor,
  length: number,
  each: (piece: Buffer | number, position: number) => void,
): Generator<RbdRequest, void, Buffer | number> {
  let left = length;
  while (left > 0) {
    const answer = yield { payload: left };
    const count = typeof answer === 'number' ? answer : answer.length;
    if (count <= 0 || count > left) throw new Error('rbd parser: a payload request was answered with a wrong length');
    each(answer, cursor.position);
    cursor.position += count;
    left -= count;
  }
}

function* name(cursor: Cursor, what: string, limit?: number): Generator<RbdRequest, string, Buffer | number> {
  const length = (yield* read(cursor, 4)).readUInt32LE(0);
  if (length > RBD_DIFF.MAX_NAME_LENGTH || (limit !== undefined && length + 4 !== limit)) {
    throw invalid(`${what} name of ${length} bytes is too long or disagrees with its record length`, cursor.position);
  }
  return (yield* read(cursor, length)).toString('utf8');
}

/** One diff stream, v1 or v2, from its banner to its 'e'. */
function* diffParser(cursor: Cursor, emit: Emit, index: number, expectVersion?: 2): Parser {
  const banner = yield* read(cursor, RBD_DIFF.BANNER_DIFF_V1.length);
  const version = banner.equals(RBD_DIFF.BANNER_DIFF_V1) ? 1 : banner.equals(RBD_DIFF.BANNER_DIFF_V2) ? 2 : undefined;
  if (version === undefined || (expectVersion !== undefined && version !== expectVersion)) {
    throw invalid(
      `diff ${index} does not start with ${expectVersion ? '"rbd diff v2"' : '"rbd diff v1" or "rbd diff v2"'}`,
      cursor.position - banner.length,
    );
  }
  let fromSnap: string | undefined;
  let toSnap: string | undefined;
  let size: number | undefined;
  let announced = false;
  let nextOffset = 0;
  const announce = () => {
    if (announced) return;
    if (size === undefined) throw invalid(`diff ${index} has no image size ('s') record before its data`, cursor.position);
    emit({
      type: 'diff',
      index,
      version,
      ...(fromSnap !== undefined ? { fromSnap } : {}),
      ...(toSnap !== undefined ? { toSnap } : {}),
      size,
    });
    announced = true;
  };
  for (;;) {
    const at = cursor.position;
    const tag = (yield* read(cursor, 1))[0]!;
    if (tag === RBD_TAG.END) {
      announce();
      emit({ type: 'diff-end', index });
      return;
    }
    const recordLength = version === 2 ? le64(yield* read(cursor, 8), 0, 'record length') : undefined;
    const metadata = tag === RBD_TAG.FROM_SNAP || tag === RBD_TAG.TO_SNAP || tag === RBD_TAG.SIZE || tag === RBD_TAG.SNAP_PROTECTION;
    if (metadata && announced) throw invalid(`metadata record '${String.fromCharCode(tag)}' after data records`, at);
    if (tag === RBD_TAG.FROM_SNAP || tag === RBD_TAG.TO_SNAP) {
      const value = yield* name(cursor, tag === RBD_TAG.FROM_SNAP ? 'from-snap' : 'to-snap', recordLength);
      if (tag === RBD_TAG.FROM_SNAP) fromSnap = value;
      else toSnap = value;
    } else if (tag === RBD_TAG.SIZE) {
      if (recordLength !== undefined && recordLength !== 8) throw invalid(`size record of length ${recordLength}`, at);
      size = le64(yield* read(cursor, 8), 0, 'image size');
    } else if (tag === RBD_TAG.SNAP_PROTECTION && version === 2) {
      // The body is one byte whatever the length field says (Ceph 16 writes 8, later ones 1).
      yield* read(cursor, 1);
    } else if (tag === RBD_TAG.WRITE || tag === RBD_TAG.ZERO) {
      announce();
      const fields = yield* read(cursor, 16);
      const offset = le64(fields, 0, 'extent offset');
      const length = le64(fields, 8, 'extent length');
      const expected = tag === RBD_TAG.WRITE ? 16 + length : 16;
      if (recordLength !== undefined && recordLength !== expected)
        throw invalid(`'${String.fromCharCode(tag)}' record length ${recordLength}, its fields say ${expected}`, at);
      if (offset < nextOffset)
        throw invalid(
          `extent at ${offset} comes before the end of the previous one (${nextOffset}): records must be in ascending order`,
          at,
        );
      if (offset + length > size!) throw invalid(`extent ${offset}+${length} runs past the image size ${size}`, at);
      nextOffset = offset + length;
      if (tag === RBD_TAG.ZERO) {
        if (length > 0) emit({ type: 'zero', offset, length });
        continue;
      }
      let done = 0;
      yield* payload(cursor, length, (piece, position) => {
        const count = typeof piece === 'number' ? piece : piece.length;
        emit({ type: 'data', offset: offset + done, length: count, position, ...(typeof piece === 'number' ? {} : { data: piece }) });
        done += count;
      });
    } else if (version === 2) {
      // Unknown v2 record: skipped by its length, as the format intends.
      yield* payload(cursor, recordLength!, () => undefined);
    } else {
      throw invalid(`unknown record tag 0x${tag.toString(16)} in a v1 diff`, at);
    }
  }
}

/** An `rbd export --export-format 2` stream: the image header, then its diffs. */
function* exportParser(cursor: Cursor, emit: Emit): Parser {
  const banner = yield* read(cursor, RBD_DIFF.BANNER_IMAGE_V2.length);
  if (!banner.equals(RBD_DIFF.BANNER_IMAGE_V2)) throw invalid('does not start with "rbd image v2"', 0);
  let order: number | undefined;
  for (;;) {
    const at = cursor.position;
    const tag = (yield* read(cursor, 1))[0]!;
    if (tag === RBD_TAG.IMAGE_END) break;
    const length = le64(yield* read(cursor, 8), 0, 'record length');
    if (tag === RBD_TAG.IMAGE_ORDER) {
      if (length !== 8) throw invalid(`order record of length ${length}`, at);
      order = le64(yield* read(cursor, 8), 0, 'image order');
    } else {
      yield* payload(cursor, length, () => undefined);
    }
  }
  const diffsBanner = yield* read(cursor, RBD_DIFF.BANNER_IMAGE_DIFFS_V2.length);
  if (!diffsBanner.equals(RBD_DIFF.BANNER_IMAGE_DIFFS_V2))
    throw invalid('the image header is not followed by "rbd image diffs v2"', cursor.position);
  const diffCount = le64(yield* read(cursor, 8), 0, 'number of diffs');
  if (diffCount < 1 || diffCount > RBD_DIFF.MAX_DIFFS) throw invalid(`${diffCount} diffs`, cursor.position);
  emit({ type: 'image', order, diffCount });
  for (let index = 0; index < diffCount; index++) yield* diffParser(cursor, emit, index, 2);
}

/**
 * Feeds bytes of an rbd stream to the parser and collects its events; strictly sequential, holding
 * only the few bytes of a record header between pushes. A stream that ends early, or goes on after
 * its last record, is an error.
 */
export class RbdStreamDecoder {
  private readonly parser: Parser;
  private readonly cursor = new Cursor();
  private events: RbdEvent[] = [];
  private request: RbdRequest | undefined;
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private finished = false;

  constructor(kind: 'rbd-diff' | 'rbd-export') {
    const emit: Emit = (event) => this.events.push(event);
    this.parser = kind === 'rbd-diff' ? diffParser(this.cursor, emit, 0) : exportParser(this.cursor, emit);
    this.advance(undefined);
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.cursor.position + this.pendingLength;
  }

  get done(): boolean {
    return this.finished;
  }

  /** Bytes of the current 'w' (or skipped) record still to come; 0 when the parser wants a header. */
  get payloadRemaining(): number {
    return this.request && 'payload' in this.request ? this.request.payload : 0;
  }

  private advance(answer: Buffer | number | undefined): void {
    const next = answer === undefined ? this.parser.next() : this.parser.next(answer);
    if (next.done) {
      this.finished = true;
      this.request = undefined;
    } else this.request = next.value;
  }

  private take(): RbdEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  push(chunk: Buffer): RbdEvent[] {
    let at = 0;
    while (at < chunk.length) {
      const request = this.request;
      if (!request) throw invalid('data after the end of the stream', this.position);
      if ('payload' in request) {
        const take = Math.min(request.payload, chunk.length - at);
        this.advance(chunk.subarray(at, at + take));
        at += take;
        continue;
      }
      const take = Math.min(request.read - this.pendingLength, chunk.length - at);
      this.pending.push(chunk.subarray(at, at + take));
      this.pendingLength += take;
      at += take;
      if (this.pendingLength === request.read) {
        const whole = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLength);
        this.pending = [];
        this.pendingLength = 0;
        this.advance(whole);
      }
    }
    return this.take();
  }

  /** Skips `count` (at most payloadRemaining) payload bytes without their contents: a file source reads them later. */
  skip(count: number): RbdEvent[] {
    if (count > this.payloadRemaining || count <= 0) throw new Error('rbd decoder: skip beyond the current payload');
    this.advance(count);
    return this.take();
  }

  /** The stream ended: an error unless the parser saw its last record. */
  finish(): void {
    if (!this.finished)
      throw new CairnError('ERR_SOURCE', `rbd stream is truncated: it ended at byte ${this.position} before its end record`, {
        offset: this.position,
      });
  }
}
