// Write batching for hot counters: increments to one counter arriving within a window are
// summed into a single INCRBY on one of its sub-counters; every caller is answered only once
// the write that carries its increment is acknowledged (or fails, and then it is not re-applied).
import { INT64_MAX, INT64_MIN } from '../common/limits.ts'

interface PendingBatch {
  delta: bigint
  waiters: Array<{ resolve(): void; reject(error: unknown): void }>
  timer: NodeJS.Timeout
}

export interface CounterBatcherOptions {
  windowMs: number
  /** Applies one summed increment; resolves when the shard acknowledged it. */
  apply(key: string, delta: bigint): Promise<void>
  /** Told of every flushed batch (for metrics). */
  onBatch(size: number): void
}

export class CounterBatcher {
  private readonly options: CounterBatcherOptions
  private readonly pending = new Map<string, PendingBatch>()

  constructor(options: CounterBatcherOptions) {
    this.options = options
  }

  add(key: string, by: bigint): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let batch = this.pending.get(key)
      // A sum outside the signed 64-bit range is no INCRBY a shard accepts: the batch so far
      // leaves now, and this increment starts the next one.
      if (batch && (batch.delta + by > INT64_MAX || batch.delta + by < INT64_MIN)) {
        clearTimeout(batch.timer)
        this.flush(key)
        batch = undefined
      }
      if (!batch) {
        batch = { delta: 0n, waiters: [], timer: setTimeout(() => this.flush(key), this.options.windowMs) }
        this.pending.set(key, batch)
      }
      batch.delta += by
      batch.waiters.push({ resolve, reject })
    })
  }

  private flush(key: string): void {
    const batch = this.pending.get(key)!
    this.pending.delete(key)
    this.options.onBatch(batch.waiters.length)
    // A failure is every waiter's: even when its outcome is unknown the batch is not re-sent.
    this.options.apply(key, batch.delta).then(
      () => batch.waiters.forEach((waiter) => waiter.resolve()),
      (error: unknown) => batch.waiters.forEach((waiter) => waiter.reject(error)),
    )
  }
}
