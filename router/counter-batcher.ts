// Write batching for hot counters: increments to one counter arriving within a window are
// summed into a single INCRBY on one of its sub-counters; every caller is answered only once
// the write that carries its increment is acknowledged (or fails).

interface PendingBatch {
  delta: number
  waiters: Array<{ resolve(): void; reject(error: unknown): void }>
}

export interface CounterBatcherOptions {
  windowMs: number
  /** Applies one summed increment; resolves when the shard acknowledged it. */
  apply(key: string, delta: number): Promise<void>
  /** Told of every flushed batch (for metrics). */
  onBatch(size: number): void
}

export class CounterBatcher {
  private readonly options: CounterBatcherOptions
  private readonly pending = new Map<string, PendingBatch>()

  constructor(options: CounterBatcherOptions) {
    this.options = options
  }

  add(key: string, by: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let batch = this.pending.get(key)
      if (!batch) {
        batch = { delta: 0, waiters: [] }
        this.pending.set(key, batch)
        setTimeout(() => this.flush(key), this.options.windowMs)
      }
      batch.delta += by
      batch.waiters.push({ resolve, reject })
    })
  }

  private flush(key: string): void {
    const batch = this.pending.get(key)!
    this.pending.delete(key)
    this.options.onBatch(batch.waiters.length)
    this.options.apply(key, batch.delta).then(
      () => batch.waiters.forEach((waiter) => waiter.resolve()),
      (error: unknown) => batch.waiters.forEach((waiter) => waiter.reject(error)),
    )
  }
}
