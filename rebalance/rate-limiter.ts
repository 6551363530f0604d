// The rebalance job's --rate: a token bucket over keys moved per second, with an injectable clock
// so that tests drive time; a rate of 0 is unlimited.

export interface Clock {
  now(): number
  sleep(ms: number): Promise<void>
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
}

/** The bounds of --rate (keys/s). */
export const MAX_RATE = 10_000_000

export class RateLimiter {
  readonly keysPerSecond: number
  private readonly clock: Clock
  /** Up to one second's worth may be spent at once, so a page of moves can leave together. */
  private readonly burst: number
  private tokens: number
  private refilledAt: number

  constructor(keysPerSecond: number, clock: Clock = systemClock) {
    if (!Number.isInteger(keysPerSecond) || keysPerSecond < 0 || keysPerSecond > MAX_RATE) {
      throw new RangeError(`the rate must be a whole number of keys/s from 0 to ${MAX_RATE}, got ${keysPerSecond}`)
    }
    this.keysPerSecond = keysPerSecond
    this.clock = clock
    this.burst = keysPerSecond
    this.tokens = keysPerSecond
    this.refilledAt = clock.now()
  }

  /**
   * Waits until count keys may be moved and takes them. A count above the burst is taken in turns
   * (the bucket goes negative and the wait pays it back), so any page size works with any rate.
   */
  async take(count: number): Promise<void> {
    if (this.keysPerSecond === 0 || count <= 0) return
    this.refill()
    this.tokens -= count
    if (this.tokens >= 0) return
    await this.clock.sleep((-this.tokens / this.keysPerSecond) * 1000)
    this.refill()
  }

  private refill(): void {
    const now = this.clock.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.keysPerSecond)
    this.refilledAt = now
  }
}
