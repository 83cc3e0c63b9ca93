/**
 * Bounds bytes in flight (read from the disk but not yet handed to the kernel). A grant larger than
 * the whole budget is allowed when nothing else is in flight, so one maximal request always proceeds.
 * Waiters are served in order.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiters: { bytes: number; grant: () => void }[] = [];

  constructor(readonly limit: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes `bytes` now if they fit and nobody is waiting; the hot path, which allocates nothing. */
  tryAcquire(bytes: number): boolean {
    if (this.waiters.length > 0 || !this.fits(bytes)) return false;
    this.used += bytes;
    return true;
  }

  acquire(bytes: number): Promise<void> {
    if (this.tryAcquire(bytes)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ bytes, grant: resolve }));
  }

  /**
   * Counts bytes that already exist (a reply larger than what its request reserved) without waiting:
   * the budget may go over its limit, and then grants nothing until releases bring it back under.
   */
  charge(bytes: number): void {
    this.used += bytes;
  }

  release(bytes: number): void {
    this.used -= bytes;
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) {
      const next = this.waiters.shift()!;
      this.used += next.bytes;
      next.grant();
    }
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.limit;
  }
}
