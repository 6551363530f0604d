// WarmUpRoute: while a pool's keys are changing owners (a migration window after a reload, or
// draining shards), a read that misses on a key's owner reads the shards that owned it before and
// back-fills the newest copy; deletes and expiries reach every owner the key had.
import type { Logger } from '../../common/logger.ts'
import type { HashRing } from '../../common/ring.ts'
import { ThrottledWarning } from '../../common/throttled-warning.ts'
import type { HotKeyConfig } from '../config.ts'
import type { WarmUpMetrics } from '../metrics.ts'
import type { Migration } from '../migration-window.ts'
import { derivedKeyHome } from '../pool-layout.ts'
import type { PoolRoute, RingPoolRoute } from './pool-route.ts'
import type { Op, OpResult, RouteStep } from './route.ts'

type Found = Extract<OpResult, { kind: 'get'; found: true }>

export interface WarmUpOptions {
  next: RingPoolRoute
  migration: Migration
  /** The ring over owners and draining shards: where keys lived before the shards began to drain. */
  drainingRing: HashRing | null
  hotKeys: HotKeyConfig
  metrics: WarmUpMetrics
  log: Logger
}

/** The epoch of a counter that increments started on a missing key (shard/store.ts): no write carries it. */
const COUNTER_FROM_NOTHING = 1

/**
 * Counters are never back-filled: SL.GETV gives a counter's sum, and a copy of the sum would lose
 * its per-writer parts, so the rebalance job's writer-by-writer merge would count them twice. A
 * counter only previous owners hold is served from there; increments on the new owner start from
 * nothing (epoch 1), and while a previous owner still holds the key the parts add up: reads,
 * counter reads and increments' replies sum them, until the job adds the old count to the new
 * owner's (INCRBY) and drops it. A counter the new owner grew from a value written there since is
 * the key's count alone. Sub-counters (hot counters' parts) are summed at their previous homes too.
 */
export class WarmUpRoute implements PoolRoute {
  readonly pool: string
  private readonly next: RingPoolRoute
  private readonly migration: Migration
  private readonly drainingRing: HashRing | null
  private readonly hotKeys: HotKeyConfig
  private readonly metrics: WarmUpMetrics
  private readonly backfillFailed: ThrottledWarning
  private readonly previousUnreadable: ThrottledWarning
  /** Read-throughs in flight, one per key (single-flight). */
  private readonly readThroughs = new Map<string, Promise<OpResult>>()

  constructor(options: WarmUpOptions) {
    this.next = options.next
    this.pool = options.next.pool
    this.migration = options.migration
    this.drainingRing = options.drainingRing
    this.hotKeys = options.hotKeys
    this.metrics = options.metrics
    this.backfillFailed = new ThrottledWarning(options.log, 'warm-up back-fill failed: the value was served, the new owner still misses it')
    this.previousUnreadable = new ThrottledWarning(options.log, 'warm-up could not read a previous owner: read as a miss there')
  }

  route(op: Op): Promise<OpResult> {
    const key = op.key
    const owner = this.next.ownerOf(key)
    const previous = this.previousOwners(owner, (ring) => ring.lookup(key))
    if (previous.length === 0) return this.next.routeToShard(owner, op)
    switch (op.kind) {
      case 'get':
        return this.read(key, owner, previous)
      case 'set':
        // A plain versioned write replaces whatever the key held; a conditional one or one that
        // keeps the TTL depends on it, so the key is moved first.
        if (op.condition === undefined && !op.keepTtl) return this.next.routeToShard(owner, op)
        return this.locate(key, owner, previous).then(() => this.next.routeToShard(owner, op))
      case 'incr':
      case 'counter':
        return this.count(op, owner, previous)
      case 'delete':
        return this.everyOwner(op, owner, previous).then((results) => ({ kind: 'delete', deleted: results.some((r) => r.kind === 'delete' && r.deleted) }))
      case 'expire':
        return this.everyOwner(op, owner, previous).then((results) => ({ kind: 'expire', applied: results.some((r) => r.kind === 'expire' && r.applied) }))
      case 'ttl':
        return this.ttl(op, owner, previous)
    }
  }

  distinctShards(key: string, count: number): string[] {
    return this.next.distinctShards(key, count)
  }

  routeToShard(shard: string, op: Op): Promise<OpResult> {
    if (op.kind !== 'counter') return this.next.routeToShard(shard, op)
    const previous = this.previousOwners(shard, (ring) => derivedKeyHome(ring, op.key, this.hotKeys))
    if (previous.length === 0) return this.next.routeToShard(shard, op)
    return this.sumCounts(op.key, [shard, ...previous]).then((value) => ({ kind: 'counter', value }))
  }

  /** Seconds left of the migration window (0 when none): draining shards are read through regardless. */
  windowSecondsLeft(): number {
    return Math.max(0, Math.ceil((this.migration.deadline - Date.now()) / 1000))
  }

  explain(key: string): RouteStep[] {
    const owner = this.next.ownerOf(key)
    const previous = this.previousOwners(owner, (ring) => ring.lookup(key))
    const left = this.windowSecondsLeft()
    const reasons = [
      left > 0 ? `migration window: ${left} s left` : 'no migration window',
      ...(this.drainingRing ? ['draining shards are read through'] : []),
    ]
    const decision = previous.length > 0 ? `new owner ${owner}; on a miss read ${previous.join(', ')} and back-fill` : `${owner} only (it owned the key before too)`
    return [{ route: 'warm-up', decision, why: reasons.join('; ') }, ...this.next.explain(key)]
  }

  describe(): unknown {
    return {
      warmUp: {
        windowSecondsLeft: this.windowSecondsLeft(),
        previousOwners: this.windowSecondsLeft() > 0 ? this.migration.rings.map((ring) => ring.nodes) : [],
        drainingRing: this.drainingRing?.nodes ?? null,
      },
      next: this.next.describe(),
    }
  }

  /** The distinct shards of this pool that placed the key elsewhere than owner before, newest ring first. */
  private previousOwners(owner: string, home: (ring: HashRing) => string | null): string[] {
    const found: string[] = []
    const add = (ring: HashRing) => {
      const shard = home(ring)
      // A shard that left the config cannot be reached (the reload logged it).
      if (shard !== null && shard !== owner && !found.includes(shard) && this.next.hasShard(shard)) found.push(shard)
    }
    if (Date.now() < this.migration.deadline) this.migration.rings.forEach(add)
    if (this.drainingRing) add(this.drainingRing)
    return found
  }

  private async read(key: string, owner: string, previous: string[]): Promise<OpResult> {
    const { located, split } = await this.locate(key, owner, previous)
    if (!split || located.kind !== 'get' || !located.found) return located
    return { ...located, value: Buffer.from(String(await this.sumCounts(key, [owner, ...previous])), 'latin1') }
  }

  /**
   * The key on its new owner, or else, read through (and back-filled unless a counter), on the
   * previous ones. split: a counter whose count may lie on several owners — one read through (the
   * new owner has none), or one the new owner started from nothing.
   */
  private async locate(key: string, owner: string, previous: string[]): Promise<{ located: OpResult; split: boolean }> {
    const current = await this.next.routeToShard(owner, { kind: 'get', key })
    if (current.kind !== 'get') return { located: current, split: false }
    if (current.found) return { located: current, split: current.counter === true && current.version === COUNTER_FROM_NOTHING }
    const located = await this.readThrough(key, owner, previous)
    return { located, split: located.kind === 'get' && located.found && located.counter === true }
  }

  private async count(op: Extract<Op, { kind: 'incr' | 'counter' }>, owner: string, previous: string[]): Promise<OpResult> {
    const { split } = await this.locate(op.key, owner, previous)
    if (!split) return this.next.routeToShard(owner, op)
    if (op.kind === 'counter') return { kind: 'counter', value: await this.sumCounts(op.key, [owner, ...previous]) }
    // Read first: a value there that is not a counter refuses the increment, as on one shard.
    const earlier = await this.sumCounts(op.key, previous)
    const result = await this.next.routeToShard(owner, op)
    return result.kind === 'incr' && result.value !== null ? { kind: 'incr', value: result.value + earlier } : result
  }

  private async sumCounts(key: string, shards: string[]): Promise<bigint> {
    const parts = await Promise.all(shards.map((shard) => this.next.routeToShard(shard, { kind: 'counter', key })))
    return parts.reduce((sum, part) => sum + (part.kind === 'counter' ? part.value : 0n), 0n)
  }

  /** Reads the previous owners after a miss on the new one: once per key at a time. */
  private readThrough(key: string, owner: string, previous: string[]): Promise<OpResult> {
    let flight = this.readThroughs.get(key)
    if (!flight) {
      flight = this.backfillFromPrevious(key, owner, previous).finally(() => this.readThroughs.delete(key))
      this.readThroughs.set(key, flight)
    }
    return flight
  }

  private async backfillFromPrevious(key: string, owner: string, previous: string[]): Promise<OpResult> {
    const read: Op = { kind: 'get', key }
    const newest = await this.newestOf(read, previous)
    this.metrics.read(this.pool, newest ? 'hit' : 'miss')
    // The rebalance job may have moved the key between the two reads (it stores on the new owner
    // before it drops the old copy): the new owner, read again, has it then.
    if (!newest) return this.next.routeToShard(owner, read)
    if (newest.counter) return newest
    let stored: boolean
    try {
      const backfill: Op = { kind: 'set', key, value: newest.value, flags: newest.flags, version: newest.version, ...(newest.ttlMs >= 0 ? { ttlMs: Math.max(1, newest.ttlMs) } : {}) }
      const result = await this.next.routeToShard(owner, backfill)
      stored = result.kind === 'set' && result.stored
    } catch (error) {
      this.metrics.backfill(this.pool, 'failed')
      this.backfillFailed.warn({ pool: this.pool, shard: owner, error: (error as Error).message })
      return newest
    }
    this.metrics.backfill(this.pool, stored ? 'stored' : 'older')
    // Refused: a write or a delete landed on the new owner meanwhile, and that is the key's value now.
    return stored ? newest : this.next.routeToShard(owner, read)
  }

  /** The newest copy on the previous owners; one that cannot be read counts as a miss there. */
  private async newestOf(read: Op, previous: string[]): Promise<Found | null> {
    const results = await Promise.allSettled(previous.map((shard) => this.next.routeToShard(shard, read)))
    let newest: Found | null = null
    results.forEach((result, i) => {
      if (result.status === 'rejected') this.previousUnreadable.warn({ pool: this.pool, shard: previous[i], error: (result.reason as Error).message })
      else if (result.value.kind === 'get' && result.value.found && (!newest || result.value.version > newest.version)) newest = result.value
    })
    return newest
  }

  // Every owner must apply it (a copy left on a previous owner would be back-filled later), so a
  // failure on any fails the request: deletes and expiries are safe to repeat.
  private everyOwner(op: Op, owner: string, previous: string[]): Promise<OpResult[]> {
    return Promise.all([owner, ...previous].map((shard) => this.next.routeToShard(shard, op)))
  }

  private async ttl(op: Op, owner: string, previous: string[]): Promise<OpResult> {
    const current = await this.next.routeToShard(owner, op)
    if (current.kind !== 'ttl' || current.ttlMs !== -2) return current
    const results = await Promise.allSettled(previous.map((shard) => this.next.routeToShard(shard, op)))
    for (const result of results) {
      if (result.status === 'fulfilled' && result.value.kind === 'ttl' && result.value.ttlMs !== -2) return result.value
    }
    return current
  }
}

