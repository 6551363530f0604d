// HotKeyRoute: counts every key of a pool in the hot-key detector. A hot key's reads go to one
// of R copies on distinct shards (filled from the base key once per router per copy), its writes
// keep the copies coherent, and a hot counter's increments are batched into sub-counters.
import { LRUCache } from 'lru-cache'
import { HotKeyDetector, type HeavyHitter } from '../../common/hot-key-detector.ts'
import { CounterBatcher } from '../counter-batcher.ts'
import type { HotKeyConfig } from '../config.ts'
import type { HotKeyMetrics } from '../metrics.ts'
import type { PoolRoute } from './pool-route.ts'
import type { Op, OpResult, Route, RouteStep } from './route.ts'

/**
 * Derived keys end in NUL plus a tag: the router refuses keys with control characters, so no
 * user key can be a copy or a sub-counter. Shards accept keys 6 bytes longer than routers do.
 */
export const copyKey = (key: string, index: number) => `${key}\u0000h${index}`
export const subCounterKey = (key: string, index: number) => `${key}\u0000c${index}`

/** A copy's or sub-counter's base key and index; null for a user key (it has no NUL). */
export function parseDerivedKey(key: string): { base: string; kind: 'copy' | 'sub-counter'; index: number } | null {
  const nul = key.indexOf('\u0000')
  const tag = key[nul + 1]
  const index = key.slice(nul + 2)
  if (nul === -1 || (tag !== 'h' && tag !== 'c') || !/^\d{1,2}$/.test(index)) return null
  return { base: key.slice(0, nul), kind: tag === 'h' ? 'copy' : 'sub-counter', index: Number(index) }
}

/** The shard of each of count derived keys, given the distinct shards clockwise from the base key. */
export function derivedKeyShards(distinct: readonly string[], count: number): string[] {
  return Array.from({ length: count }, (_, i) => distinct[i % distinct.length])
}

/** Marks a copy that stands for a deleted key, so a late fill with older data cannot revive it. */
export const FLAG_DELETED_COPY = 0x40000000

export class HotKeyRoute implements Route {
  readonly pool: string
  readonly detector: HotKeyDetector
  private readonly settings: HotKeyConfig
  private readonly next: PoolRoute
  private readonly metrics: HotKeyMetrics
  /** Copy fills in flight, one per copy key (singleflight). */
  private readonly fills = new Map<string, Promise<OpResult>>()
  /** Versions this router wrote lately: a copy older than one of them is not served here. */
  private readonly recentWrites: LRUCache<string, number>
  private readonly counters: CounterBatcher
  /** Which sub-counter each hot counter's next batch goes to (round robin). */
  private readonly counterTurn = new LRUCache<string, number>({ max: 10_000 })

  constructor(pool: string, next: PoolRoute, settings: HotKeyConfig, metrics: HotKeyMetrics) {
    this.pool = pool
    this.next = next
    this.settings = settings
    this.metrics = metrics
    this.detector = new HotKeyDetector({ share: settings.share, rate: settings.rate, minRate: settings.minRate, decayMs: 250, topK: 32, width: 8192 }, Date.now())
    this.recentWrites = new LRUCache({ max: 100_000, ttl: settings.copyTtlMs })
    this.counters = new CounterBatcher({
      windowMs: settings.counterWindowMs,
      apply: (key, delta) => this.incrementSubCounter(key, delta),
      onBatch: (size) => metrics.counterBatch(size),
    })
  }

  async route(op: Op): Promise<OpResult> {
    if (!this.settings.enabled) return this.next.route(op)
    const hot = this.detector.record(op.key, Date.now())
    switch (op.kind) {
      case 'get':
        return hot ? this.readCopy(op.key) : this.next.route(op)
      case 'set':
      case 'delete': {
        const result = await this.next.route(op)
        // A conditional SET that did not apply changed nothing for the copies to follow.
        if (result.kind === 'set' && !result.stored && op.kind === 'set' && op.condition !== undefined) return result
        this.recentWrites.set(op.key, op.version)
        if (hot) await this.writeCopies(op)
        return result
      }
      case 'expire': {
        const result = await this.next.route(op)
        if (hot && result.kind === 'expire' && result.applied) await this.expireCopies(op)
        return result
      }
      case 'ttl':
        // A copy's TTL is its own (at most copyTtl), not the key's.
        return this.next.route(op)
      case 'incr':
        if (!hot) return this.next.route(op)
        await this.counters.add(op.key, op.by)
        return { kind: 'incr', value: null }
      case 'counter':
        return this.sumCounter(op.key)
    }
  }

  heavyHitters(): HeavyHitter[] {
    return this.detector.heavyHitters(Date.now())
  }

  explain(key: string): RouteStep[] {
    const hot = this.settings.enabled && this.detector.isHot(key)
    const why = this.settings.enabled ? (hot ? `above ${this.settings.share * 100}% of this router's traffic for pool ${this.pool}` : 'below the hot threshold') : 'hot-key spreading is off for this pool'
    return [{ route: 'hot keys', decision: hot ? `reads spread over ${this.settings.copies} copies` : 'not hot', why }, ...this.next.explain(key)]
  }

  describe(): unknown {
    return { hotKeys: this.settings, next: this.next.describe() }
  }

  private copyShards(key: string, count: number): string[] {
    return derivedKeyShards(this.next.distinctShards(key, count), count)
  }

  private async readCopy(key: string): Promise<OpResult> {
    const index = Math.floor(Math.random() * this.settings.copies)
    const shard = this.copyShards(key, this.settings.copies)[index]
    const copy = copyKey(key, index)
    const result = await this.next.routeToShard(shard, { kind: 'get', key: copy })
    if (result.kind === 'get' && result.found) {
      const written = this.recentWrites.get(key)
      if (written === undefined || result.version >= written) {
        this.metrics.copyRead('hit')
        return result.flags & FLAG_DELETED_COPY ? { kind: 'get', found: false } : result
      }
      this.metrics.copyRead('stale')
    } else {
      this.metrics.copyRead('miss')
    }
    let fill = this.fills.get(copy)
    if (!fill) {
      fill = this.fill(key, shard, copy).finally(() => this.fills.delete(copy))
      this.fills.set(copy, fill)
    }
    return fill
  }

  // Reads the base key and stores it as the copy, versioned, for at most copyTtl and never past
  // the base key's own expiry.
  private async fill(key: string, shard: string, copy: string): Promise<OpResult> {
    const base = await this.next.route({ kind: 'get', key })
    if (base.kind !== 'get' || !base.found) return base
    const ttlMs = base.ttlMs > 0 ? Math.min(base.ttlMs, this.settings.copyTtlMs) : this.settings.copyTtlMs
    await this.next.routeToShard(shard, { kind: 'set', key: copy, value: base.value, flags: base.flags, ttlMs, version: base.version })
    this.metrics.copyFill()
    return base
  }

  // A write through this router overwrites every copy with the same version (a delete with a
  // deleted-marker), so a fill racing with it, carrying an older version, is refused by the shard.
  // A copy that cannot be written does not fail the write: the base key has it, this router will
  // not serve an older copy (recentWrites), and other routers' copies expire within copyTtl.
  private async writeCopies(op: Extract<Op, { kind: 'set' | 'delete' }>): Promise<void> {
    const shards = this.copyShards(op.key, this.settings.copies)
    await Promise.allSettled(shards.map((shard, index) => {
      const key = copyKey(op.key, index)
      const ttlMs = op.kind === 'set' && op.ttlMs !== undefined ? Math.min(op.ttlMs, this.settings.copyTtlMs) : this.settings.copyTtlMs
      const copy: Op = op.kind === 'set'
        ? { kind: 'set', key, value: op.value, flags: op.flags, ttlMs, version: op.version }
        : { kind: 'set', key, value: Buffer.alloc(0), flags: FLAG_DELETED_COPY, ttlMs, version: op.version }
      return this.next.routeToShard(shard, copy)
    }))
  }

  // A copy must not outlive its key: each takes the new TTL (capped at copyTtl), and a TTL of 0 or
  // less deletes it. Unversioned, like EXPIRE itself: a fill that read the key before the EXPIRE
  // and lands after it may keep the old TTL, for at most copyTtl. A copy that cannot be reached
  // does not fail the EXPIRE, as with writeCopies.
  private async expireCopies(op: Extract<Op, { kind: 'expire' }>): Promise<void> {
    const shards = this.copyShards(op.key, this.settings.copies)
    const ttlMs = Math.min(op.ttlMs, this.settings.copyTtlMs)
    await Promise.allSettled(shards.map((shard, index) => this.next.routeToShard(shard, { kind: 'expire', key: copyKey(op.key, index), ttlMs })))
  }

  private async incrementSubCounter(key: string, delta: bigint): Promise<void> {
    const turn = this.counterTurn.get(key) ?? Math.floor(Math.random() * this.settings.counterShards)
    this.counterTurn.set(key, (turn + 1) % this.settings.counterShards)
    const shard = this.copyShards(key, this.settings.counterShards)[turn]
    await this.next.routeToShard(shard, { kind: 'incr', key: subCounterKey(key, turn), by: delta })
  }

  // Any router may have split the counter, so a read always adds every sub-counter to the base.
  private async sumCounter(key: string): Promise<OpResult> {
    const shards = this.copyShards(key, this.settings.counterShards)
    const parts = await Promise.all([
      this.next.route({ kind: 'counter', key }),
      ...shards.map((shard, index) => this.next.routeToShard(shard, { kind: 'counter', key: subCounterKey(key, index) })),
    ])
    return { kind: 'counter', value: parts.reduce((sum, part) => sum + (part.kind === 'counter' ? part.value : 0n), 0n) }
  }
}
