import { CairnError } from '../core/errors.js';

const INTERRUPT_GRACE_MS = 3000;

/**
 * Runs `work` with an AbortSignal that fires on SIGINT or SIGTERM, so long operations stop cleanly
 * (a backup drops its draft and lock) instead of being killed mid-write.
 */
export async function withInterruption<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    controller.abort(new CairnError('ERR_INVALID_ARGUMENT', `interrupted by ${signal}`, { signal }));
    // Work blocked on a silent source (stdin, a stalled server) never reaches its next abort check:
    // stop anyway after a grace period. Nothing partial is visible; gc removes the leftovers.
    setTimeout(() => {
      process.stderr.write(`cairn: interrupted by ${signal}\n`);
      process.exit(130);
    }, INTERRUPT_GRACE_MS).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } catch (err) {
    if (controller.signal.aborted) throw new InterruptedError(String((controller.signal.reason as Error)?.message ?? 'interrupted'));
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export class InterruptedError extends Error {}

/** Resolves on the first SIGINT or SIGTERM (the signal's name). */
export function nextTerminationSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
