// Which keys expire when, in coarse time buckets, so the background sweep can find expired
// entries without scanning the whole store or waiting for a read.

export class ExpiryIndex {
  private readonly bucketMs: number
  private readonly buckets = new Map<number, Set<string>>()
  /** Keys filed in the index (each live key with a TTL, once). */
  size = 0
  /** First bucket the sweep has not finished yet. */
  private cursor: number

  constructor(bucketMs: number, now: number) {
    this.bucketMs = bucketMs
    this.cursor = Math.floor(now / bucketMs)
  }

  add(key: string, expiresAt: number): void {
    if (expiresAt === 0) return
    // A bucket the sweep already passed would never be visited again: file it at the cursor.
    const id = Math.max(this.cursor, Math.floor(expiresAt / this.bucketMs))
    let bucket = this.buckets.get(id)
    if (!bucket) {
      bucket = new Set()
      this.buckets.set(id, bucket)
    }
    if (!bucket.has(key)) {
      bucket.add(key)
      this.size++
    }
  }

  remove(key: string, expiresAt: number): void {
    if (expiresAt === 0) return
    const id = Math.max(this.cursor, Math.floor(expiresAt / this.bucketMs))
    const bucket = this.buckets.get(id)
    if (!bucket || !bucket.delete(key)) return
    this.size--
    if (bucket.size === 0) this.buckets.delete(id)
  }

  clear(): void {
    this.buckets.clear()
    this.size = 0
  }

  /**
   * Yields keys filed in buckets that ended at or before now, at most limit of them; each yielded
   * key is dropped from the index. The caller checks the entry itself (it may have been rewritten).
   */
  *due(now: number, limit: number): Generator<string> {
    const last = Math.floor(now / this.bucketMs) - 1
    let yielded = 0
    while (this.cursor <= last && yielded < limit) {
      if (this.buckets.size === 0) {
        this.cursor = last + 1
        return
      }
      const bucket = this.buckets.get(this.cursor)
      if (bucket) {
        for (const key of bucket) {
          bucket.delete(key)
          this.size--
          yield key
          if (++yielded >= limit) break
        }
        if (bucket.size > 0) return
        this.buckets.delete(this.cursor)
      }
      this.cursor++
    }
  }
}
