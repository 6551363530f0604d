// The shard's key-value store: lru-cache under a hard byte budget, with per-entry TTL,
// versions, tombstones, flags, and the lru / fifo / lfu eviction policies. Knows nothing of the network.
import { createHash, randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { CountMinSketch } from '../common/count-min-sketch.ts'
import { HybridLogicalClock, LOGICAL_RANGE } from '../common/hlc.ts'
import { INT64_MAX, INT64_MIN, MAX_TTL_MS } from '../common/limits.ts'
import { addToComponent, counterPayload, counterSum, mergeCounters, parseCounterPayload, WRITER_PATTERN, type CounterState } from './counter-entry.ts'
import { ExpiryIndex } from './expiry-index.ts'
import {
  ENTRY_HEADER_BYTES,
  entryExpiresAt,
  entryFlags,
  entryIsCounter,
  entryIsTombstone,
  entryPayload,
  entryValue,
  entryVersion,
  MAX_EXPIRES_AT,
  packEntry,
  repackEntry,
} from './entry.ts'

export type EvictionPolicy = 'lru' | 'fifo' | 'lfu'
export const EVICTION_POLICIES: readonly EvictionPolicy[] = ['lru', 'fifo', 'lfu']

/**
 * Bytes one entry costs beyond its key and packed value: two string headers, the Map slot and
 * lru-cache's per-index arrays. Measured by bench/memory.ts (RSS per item minus payload).
 */
export const ENTRY_OVERHEAD_BYTES = 152

export interface StoreOptions {
  maxMemory: number
  policy?: EvictionPolicy
  /** Epoch milliseconds; tests pass a controllable clock. */
  now?: () => number
  /** How long a deleted key's version is remembered, so that an older write cannot revive it. */
  tombstoneTtlMs?: number
  /**
   * How far ahead of this store's clock a version from elsewhere may be. A version further ahead
   * is refused: the clock observes every version it stores, and one pushed far ahead would make
   * every later local write look older than the poisoned key.
   */
  maxVersionDriftMs?: number
  /**
   * What this store calls itself in a counter's components (see counter-entry.ts): unique per
   * process start, so that a restarted shard never mistakes an older component of its name for its own.
   */
  writerId?: string
  /** This shard's region id (common/hlc.ts): the tie-break slot of every version its clock issues; absent without regions. */
  regionId?: number
}

/** Told of every change a replica must see (replication sets it; null when nobody listens). */
export interface StoreChangeListener {
  /** key now holds packed: a value or a tombstone. */
  written(key: string, packed: string): void
  /**
   * key left without a tombstone: the byte budget pushed it out, or a drop removed it (SL.DROP
   * once the key moved to another shard, or a peer's drop replayed).
   */
  evicted(key: string, packed: string, by: 'budget' | 'drop'): void
  flushed(): void
}

export const DEFAULT_TOMBSTONE_TTL_MS = 60_000
export const DEFAULT_MAX_VERSION_DRIFT_MS = 60_000

export interface WriteOptions {
  /** Time to live in milliseconds; absent or 0 = no expiry. */
  ttlMs?: number
  /** Keep the current entry's expiry (SET … KEEPTTL). */
  keepTtl?: boolean
  /** nx: only if absent; xx: only if present. */
  condition?: 'nx' | 'xx'
  flags?: number
  /** A version from elsewhere (router, primary): the write applies only if it is newer. */
  version?: number
}

export type WriteResult = 'stored' | 'condition-failed' | 'stale' | 'rejected'
export type DeleteResult = 'deleted' | 'absent' | 'stale'

/** An operation the store refuses (its message is the RESP error); nothing was changed. */
export class StoreError extends Error {}

export const VERSION_NOT_POSITIVE = 'ERR version must be a positive integer'
export const VERSION_TOO_FAR_AHEAD = "ERR version is too far ahead of this shard's clock"
const INVALID_TTL = `ERR invalid expire time (a TTL is an integer number of ms from 1 to ${MAX_TTL_MS})`
const INVALID_FLAGS = 'ERR flags must be an integer from 0 to 4294967295'
const NOT_INTEGER = 'ERR value is not an integer or out of range'
const OVERFLOW = 'ERR increment or decrement would overflow'
const MALFORMED_COUNTER = 'ERR malformed counter entry'

export interface StoreStats {
  hits: number
  misses: number
  evictions: number
  expiredOnRead: number
  expiredBySweep: number
  admissionsRejected: number
}

export class Store {
  readonly maxMemory: number
  readonly policy: EvictionPolicy
  readonly tombstoneTtlMs: number
  readonly maxVersionDriftMs: number
  readonly writerId: string
  changes: StoreChangeListener | null = null
  readonly stats: StoreStats = { hits: 0, misses: 0, evictions: 0, expiredOnRead: 0, expiredBySweep: 0, admissionsRejected: 0 }
  private readonly now: () => number
  private readonly clock: HybridLogicalClock
  private readonly cache: LRUCache<string, string>
  private readonly expiries: ExpiryIndex
  private readonly frequency: CountMinSketch | null
  private tombstones = 0

  constructor(options: StoreOptions) {
    this.maxMemory = options.maxMemory
    this.policy = options.policy ?? 'lru'
    this.now = options.now ?? Date.now
    this.tombstoneTtlMs = options.tombstoneTtlMs ?? DEFAULT_TOMBSTONE_TTL_MS
    this.maxVersionDriftMs = options.maxVersionDriftMs ?? DEFAULT_MAX_VERSION_DRIFT_MS
    this.writerId = options.writerId ?? randomBytes(6).toString('base64url')
    if (!WRITER_PATTERN.test(this.writerId)) throw new Error(`a writer id is 1-32 of A-Z a-z 0-9 _ -, not ${JSON.stringify(this.writerId)}`)
    this.clock = new HybridLogicalClock(this.now, options.regionId ?? null)
    this.expiries = new ExpiryIndex(100, this.now())
    this.cache = new LRUCache<string, string>({
      maxSize: this.maxMemory,
      sizeCalculation: (packed, key) => entryCost(key, packed),
      dispose: (packed, key, reason) => {
        this.expiries.remove(key, entryExpiresAt(packed))
        if (entryIsTombstone(packed)) {
          this.tombstones--
        } else if (reason === 'evict') {
          this.stats.evictions++
          this.changes?.evicted(key, packed, 'budget')
        }
      },
    })
    // TinyLFU sizing: about one counter per entry the budget can hold, aged every 10x that.
    const width = Math.min(1 << 22, Math.max(1024, Math.floor(this.maxMemory / 256)))
    this.frequency = this.policy === 'lfu' ? new CountMinSketch({ width, depth: 4, decayAfter: width * 10 }) : null
  }

  /** Live keys (tombstones are not keys). */
  get size(): number {
    return this.cache.size - this.tombstones
  }

  get tombstoneCount(): number {
    return this.tombstones
  }

  /** Live keys that carry a TTL (INFO's expires=). */
  get expiringKeys(): number {
    // Every tombstone is filed in the index too (it expires after tombstoneTtlMs).
    return this.expiries.size - this.tombstones
  }

  /** Bytes charged against maxMemory. */
  get bytes(): number {
    return this.cache.calculatedSize
  }

  /** The live packed entry for key (see entry.ts), counted as a read for hits and eviction order. */
  get(key: string): string | undefined {
    this.frequency?.increment(key)
    const packed = this.policy === 'fifo' ? this.cache.peek(key) : this.cache.get(key)
    if (packed === undefined || entryIsTombstone(packed) || this.expireIfDue(key, packed)) {
      this.stats.misses++
      return undefined
    }
    this.stats.hits++
    return packed
  }

  /** The live packed entry without touching stats or eviction order (TTL, EXISTS, replication). */
  peek(key: string): string | undefined {
    const packed = this.peekEntry(key)
    return packed === undefined || entryIsTombstone(packed) ? undefined : packed
  }

  /** Like peek, but a tombstone is returned too: what versioned writes compare against. */
  peekEntry(key: string): string | undefined {
    const packed = this.cache.peek(key)
    if (packed === undefined || this.expireIfDue(key, packed)) return undefined
    return packed
  }

  /** Throws StoreError for a version, TTL or flags out of range. */
  set(key: string, value: Buffer | string, options: WriteOptions = {}): WriteResult {
    if (options.version !== undefined) this.checkVersion(options.version)
    const flags = options.flags ?? 0
    if (!Number.isInteger(flags) || flags < 0 || flags > 0xffffffff) throw new StoreError(INVALID_FLAGS)
    const ttlExpiry = options.ttlMs === undefined || options.ttlMs === 0 ? 0 : this.expiryAfter(options.ttlMs)
    // A plain write under lru or fifo needs nothing from the current entry: skip the lookup.
    const needsCurrent = options.condition !== undefined || options.version !== undefined || options.keepTtl || this.frequency !== null
    const current = needsCurrent ? this.peekEntry(key) : undefined
    const live = current === undefined || entryIsTombstone(current) ? undefined : current
    if (options.condition === 'nx' && live !== undefined) return 'condition-failed'
    if (options.condition === 'xx' && live === undefined) return 'condition-failed'
    let version: number
    if (options.version !== undefined) {
      if (current !== undefined && entryVersion(current) >= options.version) return 'stale'
      this.clock.observe(options.version)
      version = options.version
    } else {
      version = this.clock.next()
    }
    const expiresAt = options.keepTtl && live !== undefined ? entryExpiresAt(live) : ttlExpiry
    const packed = packEntry(value, { version, expiresAt, flags })
    if (live === undefined && !this.admit(key, packed)) return 'rejected'
    this.put(key, packed, expiresAt)
    return 'stored'
  }

  delete(key: string): boolean {
    const existed = this.peek(key) !== undefined
    if (existed) this.putTombstone(key, this.clock.next())
    return existed
  }

  /**
   * A delete from elsewhere (router, primary) with its version: leaves a tombstone unless the
   * stored entry is as new or newer, so a write older than the delete cannot revive the key.
   */
  deleteVersioned(key: string, version: number): DeleteResult {
    this.checkVersion(version)
    const current = this.peekEntry(key)
    if (current !== undefined && entryVersion(current) >= version) return 'stale'
    this.clock.observe(version)
    this.putTombstone(key, version)
    return current === undefined || entryIsTombstone(current) ? 'absent' : 'deleted'
  }

  /**
   * Stores a packed entry from a peer's snapshot (a value or a tombstone, its expiry already
   * absolute on this clock) unless the stored entry is as new or newer.
   */
  restore(key: string, packed: string): WriteResult {
    const version = entryVersion(packed)
    this.checkVersion(version)
    const incoming = entryIsCounter(packed) ? this.counterState(packed) : null
    const current = this.peekEntry(key)
    if (current !== undefined && entryVersion(current) >= version) {
      // One epoch: two copies of a counter merge; a counter grown from a value or a delete of this
      // version supersedes it (the counter is what came after).
      if (entryVersion(current) > version || incoming === null) return 'stale'
      if (entryIsCounter(current)) return this.mergeInto(key, current, incoming, entryExpiresAt(packed))
    }
    this.clock.observe(version)
    if ((current === undefined || entryIsTombstone(current)) && !entryIsTombstone(packed) && !this.admit(key, packed)) return 'rejected'
    this.put(key, packed, entryExpiresAt(packed))
    return 'stored'
  }

  /**
   * Removes key, leaving no tombstone, if its entry (value or tombstone) is no newer than version:
   * a primary's eviction replayed, or SL.DROP of a key moved to another shard. Replicas hear of it.
   */
  dropIfNotNewer(key: string, version: number): boolean {
    this.checkVersion(version)
    const current = this.cache.peek(key)
    if (current === undefined || entryVersion(current) > version) return false
    this.cache.delete(key)
    this.changes?.evicted(key, current, 'drop')
    return true
  }

  /** Removes key's entry, value or tombstone, leaving no tombstone: as if it had never been written. */
  forget(key: string): boolean {
    return this.cache.delete(key)
  }

  /**
   * Every key held now, tombstones included, in no particular order: a full sync and SL.SCAN walk
   * this list while writes go on. It blocks the event loop for its whole length, so it reads
   * lru-cache's key map (read only) rather than its keys(): that iterator walks recency order and
   * checks each slot with a Map lookup, 670 ms at 1M keys against 28 ms for the map's own keys.
   */
  keyList(): string[] {
    return [...LRUCache.unsafeExposeInternals(this.cache).keyMap.keys()]
  }

  /**
   * A SHA-1 over every live key, version, flags and value in key order: equal on two stores that
   * hold the same data. It walks and sorts the whole store at once (tests and debugging only).
   */
  digest(): { items: number; sha1: string } {
    const live = [...this.cache.entries()].filter(([, packed]) => !entryIsTombstone(packed) && !this.isExpired(packed))
    live.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    const hash = createHash('sha1')
    for (const [key, packed] of live) {
      hash.update(`${key.length}:${key}${entryVersion(packed)}:${entryFlags(packed)}:${packed.length - ENTRY_HEADER_BYTES}:`, 'latin1')
      hash.update(entryPayload(packed), 'latin1')
    }
    return { items: live.length, sha1: hash.digest('hex') }
  }

  /** Sets a key's TTL; a TTL of 0 or less deletes it, as Redis does. False if the key is absent. */
  expire(key: string, ttlMs: number): boolean {
    const expiresAt = ttlMs <= 0 ? 0 : this.expiryAfter(ttlMs)
    const current = this.peek(key)
    if (current === undefined) return false
    if (ttlMs <= 0) return this.delete(key)
    this.rewriteMeta(key, current, expiresAt)
    return true
  }

  /** Remaining TTL in ms, -1 for a key without expiry, -2 for a missing key (Redis's PTTL). */
  remainingTtl(key: string): number {
    const current = this.peek(key)
    return current === undefined ? -2 : this.remainingTtlOf(current)
  }

  /**
   * The ms left of an entry already read (-1: no expiry), never -2: a reply that carries a value
   * must not say, a moment later, that the key is gone (a 1 ms TTL can pass between two lookups).
   */
  remainingTtlOf(packed: string): number {
    const expiresAt = entryExpiresAt(packed)
    return expiresAt === 0 ? -1 : Math.max(0, expiresAt - this.now())
  }

  /**
   * Adds delta to this shard's own component of key's counter (a missing key counts as 0) and
   * returns the counter's value. A plain integer value, a delete or nothing becomes a counter's
   * epoch: every shard that increments from the same start makes the same epoch, so they merge.
   */
  incrBy(key: string, delta: bigint): bigint {
    if (delta > INT64_MAX || delta < INT64_MIN) throw new StoreError(OVERFLOW)
    const current = this.peekEntry(key)
    let state: CounterState = { base: 0n, components: new Map() }
    // Epoch 1 for a counter from nothing: older than any write's version, so any write supersedes it.
    let epoch = 1
    let expiresAt = 0
    let flags = 0
    if (current !== undefined) {
      epoch = entryVersion(current)
      if (!entryIsTombstone(current)) {
        expiresAt = entryExpiresAt(current)
        flags = entryFlags(current)
        if (entryIsCounter(current)) {
          // A refused increment moves the clock on, which costs nothing.
          const added = addToComponent(entryPayload(current), this.writerId, delta, this.clock.next())
          if (added !== null) {
            if (added.sum > INT64_MAX || added.sum < INT64_MIN) throw new StoreError(OVERFLOW)
            this.put(key, packEntry(added.payload, { version: epoch, expiresAt, flags, counter: true }), expiresAt)
            return added.sum
          }
          state = this.counterState(current)
        } else {
          state = { base: integerValue(entryValue(current)), components: new Map() }
        }
      }
    }
    const result = counterSum(state) + delta
    if (result > INT64_MAX || result < INT64_MIN) throw new StoreError(OVERFLOW)
    const own = state.components.get(this.writerId)?.value ?? 0n
    state.components.set(this.writerId, { value: own + delta, version: this.clock.next() })
    this.put(key, packEntry(counterPayload(state), { version: epoch, expiresAt, flags, counter: true }), expiresAt)
    return result
  }

  clear(): void {
    this.cache.clear()
    this.expiries.clear()
    this.frequency?.clear()
    this.changes?.flushed()
  }

  /** Removes up to limit expired entries; returns how many were removed. */
  sweep(limit: number): number {
    const now = this.now()
    let removed = 0
    for (const key of this.expiries.due(now, limit)) {
      const packed = this.cache.peek(key)
      const expiresAt = packed === undefined ? 0 : entryExpiresAt(packed)
      if (packed === undefined || expiresAt === 0) continue
      if (expiresAt <= now) {
        this.cache.delete(key)
        if (!entryIsTombstone(packed)) this.stats.expiredBySweep++
        removed++
      } else {
        this.expiries.add(key, expiresAt)
      }
    }
    return removed
  }

  // A counter entry's state; a malformed one (from a peer) is refused, as is a component version
  // that could poison this store's clock.
  private counterState(packed: string): CounterState {
    const state = entryIsTombstone(packed) ? null : parseCounterPayload(entryPayload(packed))
    if (state === null) throw new StoreError(MALFORMED_COUNTER)
    for (const component of state.components.values()) this.checkVersion(component.version)
    return state
  }

  // Two copies of one epoch of a counter: the merged one is stored when it differs from ours.
  private mergeInto(key: string, current: string, incoming: CounterState, incomingExpiresAt: number): WriteResult {
    const merged = mergeCounters(this.counterState(current), incoming)
    for (const component of incoming.components.values()) this.clock.observe(component.version)
    const payload = counterPayload(merged)
    if (payload === entryPayload(current)) return 'stale'
    const expiresAt = Math.max(entryExpiresAt(current), incomingExpiresAt)
    this.put(key, packEntry(payload, { version: entryVersion(current), expiresAt, flags: entryFlags(current), counter: true }), expiresAt)
    return 'stored'
  }

  // A version from elsewhere must be one this store's clock can still move past: a positive
  // integer at most maxVersionDriftMs ahead of now (versions are ms × LOGICAL_RANGE + a counter).
  private checkVersion(version: number): void {
    if (!Number.isInteger(version) || version <= 0) throw new StoreError(VERSION_NOT_POSITIVE)
    if (version > (this.now() + this.maxVersionDriftMs) * LOGICAL_RANGE) throw new StoreError(VERSION_TOO_FAR_AHEAD)
  }

  // The absolute expiry for a TTL; the header's field must be able to hold it.
  private expiryAfter(ttlMs: number): number {
    const expiresAt = this.now() + ttlMs
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_TTL_MS || expiresAt > MAX_EXPIRES_AT) throw new StoreError(INVALID_TTL)
    return expiresAt
  }

  private isExpired(packed: string): boolean {
    const expiresAt = entryExpiresAt(packed)
    return expiresAt !== 0 && expiresAt <= this.now()
  }

  private expireIfDue(key: string, packed: string): boolean {
    if (!this.isExpired(packed)) return false
    this.cache.delete(key)
    if (!entryIsTombstone(packed)) this.stats.expiredOnRead++
    return true
  }

  // A counter's TTL changes as a write of its current value would: it becomes a plain value, the
  // epoch of any later increments.
  private rewriteMeta(key: string, packed: string, expiresAt: number): void {
    const meta = { version: this.clock.next(), expiresAt, flags: entryFlags(packed) }
    const rewritten = entryIsCounter(packed) ? packEntry(entryValue(packed), meta) : repackEntry(packed, meta)
    this.put(key, rewritten, expiresAt)
  }

  private putTombstone(key: string, version: number): void {
    const expiresAt = this.now() + this.tombstoneTtlMs
    this.put(key, packEntry('', { version, expiresAt, flags: 0, tombstone: true }), expiresAt)
  }

  // Every write lands here: the tombstone count, the expiry index and replication stay in step.
  private put(key: string, packed: string, expiresAt: number): void {
    if (entryIsTombstone(packed)) this.tombstones++
    this.cache.set(key, packed)
    this.expiries.add(key, expiresAt)
    this.changes?.written(key, packed)
  }

  // TinyLFU admission: when a new entry would force an eviction, it gets in only if it has
  // been asked for more often than the entry that would leave. lru and fifo admit everything.
  private admit(key: string, packed: string): boolean {
    if (this.frequency === null) return true
    // The key's reads were counted by get(); counting the write too would count a miss twice.
    if (this.cache.calculatedSize + entryCost(key, packed) <= this.maxMemory) return true
    const victim = this.cache.rkeys().next()
    if (victim.done) return true
    if (this.frequency.estimate(key) > this.frequency.estimate(victim.value)) return true
    this.stats.admissionsRejected++
    return false
  }
}

/** A stored value as INCR reads it: decimal text of a signed 64-bit integer, or a StoreError. */
function integerValue(text: string): bigint {
  if (!/^-?\d{1,19}$/.test(text)) throw new StoreError(NOT_INTEGER)
  const value = BigInt(text)
  if (value > INT64_MAX || value < INT64_MIN) throw new StoreError(NOT_INTEGER)
  return value
}

/** What one entry is charged against the budget. */
export function entryCost(key: string, packed: string): number {
  return key.length + packed.length + ENTRY_OVERHEAD_BYTES
}

