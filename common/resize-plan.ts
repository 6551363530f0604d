// What resizing a pool does to key ownership on the real ring (common/ring.ts), as `shardline plan
// --from N --to M` prints it: the share of keys whose owner changes and each shard's share before and after.
import { DEFAULT_POINTS_PER_NODE, HashRing } from './ring.ts'

/** The chart's largest pool (values.schema.json: pools.<name>.shards). */
export const MAX_POOL_SHARDS = 1000
/** The router's bounds on hashing.pointsPerShard (router/config.ts). */
export const MAX_POINTS_PER_SHARD = 100_000
/** Keys hashed to measure the share that moves: its standard error is under 0.12 points. */
export const RESIZE_SAMPLE_KEYS = 200_000

export interface ResizeInput {
  from: number
  to: number
  pointsPerShard?: number
  sampleKeys?: number
}

export interface ShardShare {
  name: string
  /** The shard's exact share of the hash space before and after; null where it is not in the pool. */
  before: number | null
  after: number | null
}

export interface ResizePlan {
  from: number
  to: number
  pointsPerShard: number
  sampleKeys: number
  /** Sampled keys whose owner changes, over all sampled keys. */
  movedShare: number
  /** Sampled keys that change owner between two shards in both rings (consistent hashing: none). */
  movedBetweenStaying: number
  /** The same share from the rings' exact hash-space shares: what the added shards own after, or the removed ones owned before. */
  exactMovedShare: number
  shards: ShardShare[]
}

/** A pool's shard names as the chart gives them: s0 .. s<count-1>. Scaling in removes the last ones (they drain first). */
export function poolShardNames(count: number): string[] {
  return Array.from({ length: count }, (_, index) => `s${index}`)
}

/** The sample's i-th key: shaped like application keys (a prefix and a number), as the ring sees them. */
function sampleKey(i: number): string {
  return `user:${i}:profile`
}

export function planResize(input: ResizeInput): ResizePlan {
  const { from, to } = input
  const pointsPerShard = input.pointsPerShard ?? DEFAULT_POINTS_PER_NODE
  const sampleKeys = input.sampleKeys ?? RESIZE_SAMPLE_KEYS
  for (const [name, value, max] of [['shards', from, MAX_POOL_SHARDS], ['shards', to, MAX_POOL_SHARDS], ['points per shard', pointsPerShard, MAX_POINTS_PER_SHARD], ['sampled keys', sampleKeys, 10_000_000]] as const) {
    if (!Number.isInteger(value) || value < 1 || value > max) throw new RangeError(`${name} must be a whole number from 1 to ${max}, got ${value}`)
  }
  if (from === to) throw new RangeError('the pool keeps its size: no key moves')
  const before = new HashRing(poolShardNames(from), pointsPerShard)
  const after = new HashRing(poolShardNames(to), pointsPerShard)
  const staying = Math.min(from, to)
  let moved = 0
  let movedBetweenStaying = 0
  for (let i = 0; i < sampleKeys; i++) {
    const key = sampleKey(i)
    const owner = before.lookup(key)
    const newOwner = after.lookup(key)
    if (owner === newOwner) continue
    moved++
    if (Number(owner.slice(1)) < staying && Number(newOwner.slice(1)) < staying) movedBetweenStaying++
  }
  const beforeShares = before.shares()
  const afterShares = after.shares()
  const changed = poolShardNames(Math.max(from, to)).slice(staying)
  const exactMovedShare = changed.reduce((sum, name) => sum + (to > from ? afterShares.get(name)! : beforeShares.get(name)!), 0)
  return {
    from,
    to,
    pointsPerShard,
    sampleKeys,
    movedShare: moved / sampleKeys,
    movedBetweenStaying,
    exactMovedShare,
    shards: poolShardNames(Math.max(from, to)).map((name) => ({ name, before: beforeShares.get(name) ?? null, after: afterShares.get(name) ?? null })),
  }
}
