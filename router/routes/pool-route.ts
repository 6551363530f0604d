// PoolRoute: hashes a key onto the shard that owns it (the ring over the pool's owning shards), and
// hands the op to that shard's route (its failover route); draining shards are reached by name only.
import type { HashRing } from '../../common/ring.ts'
import type { Op, OpResult, Route, RouteStep } from './route.ts'

/** What the hot-key route needs below it: the pool's ops, and its shards by name for derived keys. */
export interface PoolRoute extends Route {
  readonly pool: string
  /** The first count distinct owning shards clockwise from key: where its hot copies live. */
  distinctShards(key: string, count: number): string[]
  /** Sends an op for a derived key (a copy, a sub-counter) to the shard chosen for it. */
  routeToShard(shard: string, op: Op): Promise<OpResult>
}

export class RingPoolRoute implements PoolRoute {
  readonly pool: string
  private readonly ring: HashRing
  /** Every shard of the pool, draining ones too: the warm-up route reads through to them. */
  private readonly shards: Map<string, Route>

  constructor(pool: string, shards: Map<string, Route>, ring: HashRing) {
    this.pool = pool
    this.shards = shards
    this.ring = ring
  }

  route(op: Op): Promise<OpResult> {
    return this.shards.get(this.ring.lookup(op.key))!.route(op)
  }

  /** The shard that owns key. */
  ownerOf(key: string): string {
    return this.ring.lookup(key)
  }

  hasShard(shard: string): boolean {
    return this.shards.has(shard)
  }

  distinctShards(key: string, count: number): string[] {
    return this.ring.lookupDistinct(key, count)
  }

  routeToShard(shard: string, op: Op): Promise<OpResult> {
    return this.shards.get(shard)!.route(op)
  }

  explain(key: string): RouteStep[] {
    const shard = this.ring.lookup(key)
    const draining = this.shards.size - this.ring.nodes.length
    const why = `hash ring over ${this.ring.nodes.length} shard names${draining > 0 ? ` (${draining} draining, owning no keys)` : ''}`
    return [{ route: `pool ${this.pool}`, decision: `shard ${shard}`, why }, ...this.shards.get(shard)!.explain(key)]
  }

  describe(): unknown {
    return { pool: this.pool, owners: this.ring.nodes, shards: Object.fromEntries([...this.shards].map(([name, route]) => [name, route.describe()])) }
  }
}
