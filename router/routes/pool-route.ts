// PoolRoute: hashes a key onto one shard of a pool with the consistent hash ring over shard
// names, and hands the op to that shard's route (its failover route).
import { HashRing } from '../../common/ring.ts'
import type { Op, OpResult, Route, RouteStep } from './route.ts'

export class PoolRoute implements Route {
  readonly pool: string
  private readonly ring: HashRing
  private readonly shards: Map<string, Route>

  constructor(pool: string, shards: Map<string, Route>, pointsPerShard: number) {
    this.pool = pool
    this.shards = shards
    this.ring = new HashRing([...shards.keys()], pointsPerShard)
  }

  route(op: Op): Promise<OpResult> {
    return this.shards.get(this.ring.lookup(op.key))!.route(op)
  }

  /** The first count distinct shards clockwise from key: where its hot copies live. */
  distinctShards(key: string, count: number): string[] {
    return this.ring.lookupDistinct(key, count)
  }

  /** Sends an op for a derived key (a copy, a sub-counter) to the shard chosen for it. */
  routeToShard(shard: string, op: Op): Promise<OpResult> {
    return this.shards.get(shard)!.route(op)
  }

  explain(key: string): RouteStep[] {
    const shard = this.ring.lookup(key)
    return [{ route: `pool ${this.pool}`, decision: `shard ${shard}`, why: `hash ring over ${this.shards.size} shard names` }, ...this.shards.get(shard)!.explain(key)]
  }

  describe(): unknown {
    return { pool: this.pool, shards: Object.fromEntries([...this.shards].map(([name, route]) => [name, route.describe()])) }
  }
}
