import type { ByteBudget } from './byte-budget.js';

/**
 * What one connection may have in flight: a number of requests, and bytes in every budget it draws
 * on (its own and the server's). The transmission loop asks before it starts the next request and
 * reads nothing more meanwhile, so a client over its share is no longer read (its socket pauses)
 * instead of making the server queue replies it never collects. A request counts from admission
 * until its reply has been taken by the socket, whatever the reply is (data, block status, error).
 */
export class RequestAdmission {
  private requests = 0;
  private countWaiter: (() => void) | undefined;
  private idleWaiter: (() => void) | undefined;

  constructor(
    private readonly maxRequests: number,
    private readonly budgets: readonly ByteBudget[],
  ) {}

  get inFlight(): number {
    return this.requests;
  }

  /**
   * Admits a request that reserves `cost` bytes. Returns undefined when admitted at once (the hot
   * path allocates nothing), else a promise that settles once it is. One caller at a time.
   */
  admit(cost: number): Promise<void> | undefined {
    if (this.requests >= this.maxRequests) return this.admitLater(cost, 0);
    let held = 0;
    while (held < this.budgets.length && this.budgets[held]!.tryAcquire(cost)) held++;
    if (held < this.budgets.length) return this.admitLater(cost, held);
    this.requests++;
    return undefined;
  }

  /** Counts reply bytes beyond a reservation while they are queued (they exist already: no waiting). */
  charge(bytes: number): void {
    for (const budget of this.budgets) budget.charge(bytes);
  }

  refund(bytes: number): void {
    for (const budget of this.budgets) budget.release(bytes);
  }

  /** The request admitted with `cost` is answered. */
  finish(cost: number): void {
    this.refund(cost);
    this.requests--;
    const waiter = this.countWaiter;
    if (waiter && this.requests < this.maxRequests) {
      this.countWaiter = undefined;
      waiter();
    }
    const idle = this.idleWaiter;
    if (idle && this.requests === 0) {
      this.idleWaiter = undefined;
      idle();
    }
  }

  /** Settles once no admitted request is left. */
  idle(): Promise<void> {
    if (this.requests === 0) return Promise.resolve();
    return new Promise((resolve) => (this.idleWaiter = resolve));
  }

  /** The slow path: `held` budgets are taken already (or none, when the count is what is full). */
  private async admitLater(cost: number, held: number): Promise<void> {
    while (this.requests >= this.maxRequests) await new Promise<void>((resolve) => (this.countWaiter = resolve));
    for (let i = held; i < this.budgets.length; i++) await this.budgets[i]!.acquire(cost);
    this.requests++;
  }
}
