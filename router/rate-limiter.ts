// A tenant's rate limit on one router: a token bucket of `burst` ops refilled at `rate` ops per
// second. In shadow mode it counts what it would refuse and refuses nothing.
import type { TenantConfig } from './config.ts'

export class RateLimiter {
  readonly rate: number
  readonly burst: number
  readonly mode: 'enforce' | 'shadow'
  private tokens: number
  private refilledAt: number

  constructor(limit: NonNullable<TenantConfig['rateLimit']>, now = performance.now()) {
    this.rate = limit.rate
    this.burst = limit.burst
    this.mode = limit.mode
    this.tokens = limit.burst
    this.refilledAt = now
  }

  /**
   * Takes cost tokens (a batch costs its ops). Returns 0 when they were there, else the ms until
   * they will be (nothing is taken then, so a refused request costs the tenant nothing).
   */
  take(cost = 1, now = performance.now()): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.rate)
    this.refilledAt = now
    if (this.tokens >= cost) {
      this.tokens -= cost
      return 0
    }
    // A cost above the burst can never be met at once: it waits for a full bucket and is refused again.
    return Math.ceil(((Math.min(cost, this.burst) - this.tokens) / this.rate) * 1000)
  }
}
