// Jittered exponential backoff for reconnects and resends: each delay is the current step times
// 0.5–1.5 (so peers that failed together do not retry together), and the step doubles up to a cap.

export class Backoff {
  private readonly minMs: number
  private readonly maxMs: number
  private stepMs: number

  constructor(minMs: number, maxMs: number) {
    this.minMs = minMs
    this.maxMs = maxMs
    this.stepMs = minMs
  }

  /** The delay before the next attempt; the one after it will be about twice as long. */
  next(): number {
    const delay = this.stepMs * (0.5 + Math.random())
    this.stepMs = Math.min(this.maxMs, this.stepMs * 2)
    return delay
  }

  /** An attempt succeeded: the next failure waits the shortest delay again. */
  reset(): void {
    this.stepMs = this.minMs
  }
}
