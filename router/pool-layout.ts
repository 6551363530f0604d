// Where a pool's keys live: the shards that own keys (draining ones do not), the ring over them,
// and the home of a hot-key copy or sub-counter. Shared by the router and the rebalance job.
import { HashRing } from '../common/ring.ts'
import type { HotKeyConfig, PoolConfig } from './config.ts'
import { derivedKeyShards, parseDerivedKey } from './routes/hot-key-route.ts'

/** Names of the shards that own keys: the pool's shards minus the draining ones, in config order. */
export function owningShards(pool: PoolConfig): string[] {
  return pool.shards.filter((shard) => !shard.draining).map((shard) => shard.name)
}

/** The ring a pool's keys hash onto (owners only). */
export function poolRing(pool: PoolConfig, pointsPerShard: number): HashRing {
  return new HashRing(owningShards(pool), pointsPerShard)
}

/**
 * For a hot-key copy or a sub-counter key (hot-key-route.ts's copyKey/subCounterKey), the shard
 * the router places it on under ring, given the pool's hot-key settings; null for any other key.
 */
export function derivedKeyHome(ring: HashRing, key: string, hotKeys: HotKeyConfig): string | null {
  const derived = parseDerivedKey(key)
  if (!derived) return null
  // An index past the setting (it was lowered since) keeps the home it was written to: the slots
  // below count do not depend on count.
  const count = Math.max(derived.kind === 'copy' ? hotKeys.copies : hotKeys.counterShards, derived.index + 1)
  return derivedKeyShards(ring.lookupDistinct(derived.base, count), count)[derived.index]
}
