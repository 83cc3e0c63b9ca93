/**
 * A token bucket over bytes per second (`--bwlimit`): `take(n)` resolves when n bytes may be read.
 * One second of burst, so short bursts do not stall the pipeline while the average stays bounded.
 */
export class RateLimiter {
  private nextFreeMs = 0;

  constructor(private readonly bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`bandwidth limit must be positive, got ${bytesPerSecond}`);
  }

  async take(bytes: number): Promise<void> {
    const now = Date.now();
    const burstMs = 1000;
    this.nextFreeMs = Math.max(this.nextFreeMs, now - burstMs) + (bytes * 1000) / this.bytesPerSecond;
    const wait = this.nextFreeMs - now;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
