// Hybrid logical clock versions: wall-clock milliseconds times 2048 plus a logical counter,
// so versions order like time yet stay unique and monotonic per clock, and fit in a double.

export const LOGICAL_RANGE = 2048

export class HybridLogicalClock {
  private last = 0
  private readonly now: () => number

  constructor(now: () => number = Date.now) {
    this.now = now
  }

  /** A version newer than every one this clock issued or observed. */
  next(): number {
    this.last = Math.max(this.last + 1, Math.floor(this.now()) * LOGICAL_RANGE)
    return this.last
  }

  /** Moves the clock past a version seen from elsewhere (a replica applying a primary's write). */
  observe(version: number): void {
    if (version > this.last) this.last = version
  }
}

