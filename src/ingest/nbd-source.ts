import { CairnError } from '../core/errors.js';
import type { Extent } from '../core/extent.js';
import { formatNbdUri, parseNbdUri, redactNbdSecrets, type NbdUri } from '../formats/nbd-uri.js';
import { NbdClient } from '../nbd/client/index.js';
import { NBD_BASE_ALLOCATION } from '../nbd/protocol/index.js';
import type { DiskSource, ExtentPlan } from './disk-source.js';
import { pullRuns, pullSteps, type PullStep, type RunSource } from './nbd-plan.js';

import { BITMAP_MODES, type BitmapMode } from './bitmap-mode.js';
export { BITMAP_MODES, type BitmapMode } from './bitmap-mode.js';

export const DIRTY_BITMAP_CONTEXT_PREFIX = 'qemu:dirty-bitmap:';

export interface NbdSourceOptions {
  /** nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH */
  uri: string;
  /** Dirty bitmap exported as qemu:dirty-bitmap:NAME, for an incremental pull. */
  bitmap?: string;
  /** new: bitmap just created or invalid (full read); reuse: incremental; none: full without a bitmap. */
  bitmapMode?: BitmapMode;
  /** TRIM each range once it is stored, so the hypervisor's fleecing image shrinks (if the export can). */
  discardAfterRead?: boolean;
  connections?: number;
  bwlimitBytesPerSec?: number;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Bytes of reads in flight ahead of the consumer. */
  readAheadBytes?: number;
}

export const NBD_SOURCE_DEFAULTS = {
  readAheadBytes: 64 * 1024 * 1024,
  /** Non-read steps (zero/unchanged) queued ahead at most; they cost no I/O but bound memory. */
  maxQueuedSteps: 4096,
  /** Largest single TRIM request. */
  maxTrim: 1024 * 1024 * 1024,
} as const;

/**
 * A disk pulled from an NBD export (QEMU fleecing / snapshot-access, qemu-nbd, nbdkit, Xen's NBD).
 * Full: base:allocation decides what to read; holes and zero extents are recorded, never read.
 * Incremental: only extents the dirty bitmap (or a Xen CBT bitmap in the plan) marks are read;
 * nothing outside them is ever read or allocation-queried.
 */
export class NbdSource implements DiskSource {
  readonly description: string;
  private readonly runSource: RunSource;
  /** Ranges read and not yet trimmed, in offset order (for --discard-after-read). */
  private readonly untrimmed: Array<{ offset: number; end: number }> = [];
  private trimmedUpTo = 0;

  private constructor(
    private readonly client: NbdClient,
    uri: NbdUri,
    private readonly opts: NbdSourceOptions,
    private readonly bitmapContext: string | undefined,
  ) {
    this.description = `nbd ${redactNbdSecrets(formatNbdUri(uri))}${bitmapContext ? ` (${bitmapContext})` : ''}`;
    this.runSource = bitmapContext ? { kind: 'dirty-bitmap', context: bitmapContext } : { kind: 'plan' };
  }

  static async open(opts: NbdSourceOptions): Promise<NbdSource> {
    const uri = parseNbdUri(opts.uri);
    const bitmap = incrementalBitmap(opts);
    const context = bitmap === undefined ? undefined : DIRTY_BITMAP_CONTEXT_PREFIX + bitmap;
    // Incremental connections select only the bitmap: with base:allocation selected too, every
    // BLOCK_STATUS over the whole disk would also query allocation outside the dirty areas.
    const client = await NbdClient.open({
      uri,
      metaContexts: context ? [context] : [NBD_BASE_ALLOCATION],
      ...(opts.connections !== undefined ? { connections: opts.connections } : {}),
      ...(opts.bwlimitBytesPerSec !== undefined ? { bwlimitBytesPerSec: opts.bwlimitBytesPerSec } : {}),
      ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
      ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
    });
    if (context && !client.hasMetaContext(context)) {
      await client.close();
      throw new CairnError(
        'ERR_NOT_FOUND',
        `NBD export ${redactNbdSecrets(JSON.stringify(uri.exportName))} does not offer the dirty bitmap ${JSON.stringify(bitmap)} (meta context ${context})`,
        { bitmap },
      );
    }
    return new NbdSource(client, uri, opts, context);
  }

  get size(): number {
    return this.client.size;
  }

  get bytesRead(): number {
    return this.client.bytesRead;
  }

  get connectionCount(): number {
    return this.client.connectionCount;
  }

  /** True when --discard-after-read is asked for and the export accepts TRIM: acknowledged ranges are trimmed. */
  get wantsAcknowledgement(): boolean {
    return this.opts.discardAfterRead === true && this.client.canTrim;
  }

  extents(plan: ExtentPlan): AsyncIterable<Extent> {
    if (this.bitmapContext) {
      if (plan.changedBlocks) {
        throw new CairnError('ERR_INVALID_ARGUMENT', 'a changed-block bitmap and an NBD dirty bitmap cannot be combined for one disk');
      }
      if (!plan.hasBase) {
        throw new CairnError(
          'ERR_NOT_FOUND',
          `incremental pull with dirty bitmap ${this.bitmapContext} needs a base point of this disk, and there is none ` +
            '(take a full backup first, or pass --bitmap-mode new)',
        );
      }
    }
    const maxRead = Math.max(this.client.blockSizes.minimum, Math.min(this.client.blockSizes.maximum, plan.chunkSize));
    const runs = pullRuns(this.client, plan, this.runSource);
    const steps = pullSteps(this.client, runs, { chunkSize: plan.chunkSize, maxRead, useAllocation: !this.bitmapContext });
    return this.prefetch(steps);
  }

  /** Keeps up to `readAheadBytes` of reads in flight (over all connections) and yields in order. */
  private async *prefetch(steps: AsyncIterator<PullStep>): AsyncGenerator<Extent> {
    const limit = this.opts.readAheadBytes ?? NBD_SOURCE_DEFAULTS.readAheadBytes;
    const queue: Array<{ step: PullStep; data?: Promise<Buffer> }> = [];
    let bytesQueued = 0;
    let exhausted = false;
    const fill = async () => {
      while (!exhausted && (queue.length === 0 || (bytesQueued < limit && queue.length < NBD_SOURCE_DEFAULTS.maxQueuedSteps))) {
        const next = await steps.next();
        if (next.done) {
          exhausted = true;
          return;
        }
        const step = next.value;
        if (step.kind === 'read') {
          const data = this.client.read(step.offset, step.length);
          data.catch(() => undefined); // observed when the consumer reaches it
          queue.push({ step, data });
          bytesQueued += step.length;
        } else {
          queue.push({ step });
        }
        // A zero or unchanged head costs no I/O: hand it out now rather than after more block status.
        if (queue.length > 1 && queue[0]!.step.kind !== 'read') return;
      }
    };
    for (;;) {
      await fill();
      const head = queue.shift();
      if (!head) return;
      const { step } = head;
      if (!head.data) {
        yield { offset: step.offset, length: step.length, kind: step.kind === 'zero' ? 'zero' : 'unchanged' };
        continue;
      }
      const data = await head.data;
      bytesQueued -= step.length;
      if (this.opts.discardAfterRead) this.untrimmed.push({ offset: step.offset, end: step.offset + step.length });
      yield { offset: step.offset, length: step.length, kind: 'data', data };
    }
  }

  /** TRIMs what was read inside [offset, offset+length) (never ranges taken from the base or zeros). */
  async acknowledgeStored(offset: number, length: number): Promise<void> {
    if (!this.wantsAcknowledgement) {
      this.untrimmed.length = 0;
      return;
    }
    const end = offset + length;
    const trims: Array<[number, number]> = [];
    // Decided synchronously: the point writer may call again before our TRIMs are answered.
    while (this.untrimmed.length > 0 && this.untrimmed[0]!.offset < end) {
      const r = this.untrimmed[0]!;
      const start = Math.max(r.offset, this.trimmedUpTo, offset);
      const stop = Math.min(r.end, end);
      if (stop > start) {
        const last = trims[trims.length - 1];
        if (last && last[1] === start && stop - last[0] <= NBD_SOURCE_DEFAULTS.maxTrim) last[1] = stop;
        else trims.push([start, stop]);
      }
      if (r.end <= end) this.untrimmed.shift();
      else break;
    }
    this.trimmedUpTo = Math.max(this.trimmedUpTo, end);
    await Promise.all(trims.map(([s, e]) => this.client.trim(s, e - s)));
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** The bitmap to pull incrementally with, or undefined for a full read. */
function incrementalBitmap(opts: NbdSourceOptions): string | undefined {
  const mode = opts.bitmapMode;
  if (mode !== undefined && !BITMAP_MODES.includes(mode)) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `unknown bitmap mode ${JSON.stringify(mode)} (expected new, reuse or none)`);
  }
  if (mode === 'reuse' && !opts.bitmap) {
    throw new CairnError('ERR_INVALID_ARGUMENT', '--bitmap-mode reuse needs --bitmap NAME');
  }
  if (mode === 'new' || mode === 'none') return undefined;
  if (opts.bitmap !== undefined && (opts.bitmap === '' || opts.bitmap.includes('\0'))) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `invalid bitmap name ${JSON.stringify(opts.bitmap)}`);
  }
  return opts.bitmap;
}
