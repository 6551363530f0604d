// Where a peer region's write for a pool goes: the owner of its key on this region's ring (through
// that shard's failover route), bypassing tenants, prefixes and hot keys, as its key is a wire key already.
import type { RegionMode } from '../common/region.ts'
import type { HashRing } from '../common/ring.ts'
import type { HotKeyConfig } from './config.ts'
import { derivedKeyHome } from './pool-layout.ts'
import type { FailoverRoute } from './routes/failover-route.ts'
import type { RawOp, RawResult } from './routes/route.ts'

/** Where a raw op can go: a pool (by its key) or one shard of it. */
export interface RawRoute {
  route(op: RawOp): Promise<RawResult>
}

export class RegionRoute implements RawRoute {
  readonly pool: string
  /** What of this pool peer regions may write here. */
  readonly mode: RegionMode
  /** Every shard of the pool by name, sorted (draining ones too): what HELLO's incarnation lists. */
  readonly shards: readonly string[]
  /** The pool's owning shards, as its pool route hashes keys onto them. */
  private readonly ring: HashRing
  private readonly failovers: ReadonlyMap<string, FailoverRoute>
  private readonly hotKeys: HotKeyConfig

  constructor(pool: string, mode: RegionMode, failovers: ReadonlyMap<string, FailoverRoute>, ring: HashRing, hotKeys: HotKeyConfig) {
    this.pool = pool
    this.mode = mode
    this.shards = [...failovers.keys()].sort()
    this.ring = ring
    this.failovers = failovers
    this.hotKeys = hotKeys
  }

  /**
   * A hot counter's sub-counter (or a hot copy) goes where this region's hot-key route reads it:
   * on the distinct shards clockwise from its base key, not where its own name hashes. Else a
   * counter's increments made in the other region would not be in its sum here.
   */
  route(op: RawOp): Promise<RawResult> {
    const home = op.key.includes('\u0000') ? derivedKeyHome(this.ring, op.key, this.hotKeys) : null
    return this.failovers.get(home ?? this.ring.lookup(op.key))!.routeRaw(op)
  }

  /** The route to one shard of the pool by name (its failover route). */
  toShard(shard: string): RawRoute {
    const failover = this.failovers.get(shard)!
    return { route: (op) => failover.routeRaw(op) }
  }
}
