// Builds the route tree a config describes (prefix -> hot keys -> pool -> failover -> destinations) with
// its own connections and health monitor, counts ops in flight, and closes once drained.
import type { Logger } from '../common/logger.ts'
import type { RouterConfig } from './config.ts'
import { HealthMonitor } from './health-monitor.ts'
import type { HotKeyMetrics } from './metrics.ts'
import { FailoverRoute } from './routes/failover-route.ts'
import { HotKeyRoute } from './routes/hot-key-route.ts'
import { PoolRoute } from './routes/pool-route.ts'
import { PrefixRoute } from './routes/prefix-route.ts'
import type { Op, OpResult, Route, RouteStep } from './routes/route.ts'
import { ShardDestination } from './shard-destination.ts'

export class RouteTree {
  readonly config: RouterConfig
  readonly generation: number
  readonly destinations: readonly ShardDestination[]
  readonly hotKeyRoutes: HotKeyRoute[] = []
  private readonly root: Route
  private readonly health: HealthMonitor
  private active = 0
  private drained: (() => void) | null = null

  constructor(config: RouterConfig, generation: number, log: Logger, onKnockout: (destination: ShardDestination) => void, hotKeyMetrics: HotKeyMetrics) {
    this.config = config
    this.generation = generation
    const destinations: ShardDestination[] = []
    const pools = new Map<string, Route>()
    for (const [poolName, pool] of Object.entries(config.pools)) {
      const shards = new Map<string, Route>()
      for (const shard of pool.shards) {
        const chain = [shard.primary, ...shard.replicas].map((destination, index) => new ShardDestination({
          pool: poolName,
          shard: shard.name,
          role: index === 0 ? 'primary' : 'replica',
          index,
          endpoint: destination.address,
          admin: destination.admin,
        }, config.connections))
        destinations.push(...chain)
        shards.set(shard.name, new FailoverRoute(shard.name, chain))
      }
      const hotKeys = new HotKeyRoute(poolName, new PoolRoute(poolName, shards, config.hashing.pointsPerShard), pool.hotKeys, hotKeyMetrics)
      this.hotKeyRoutes.push(hotKeys)
      pools.set(poolName, hotKeys)
    }
    this.destinations = destinations
    // Keys are compared as their UTF-8 bytes (latin1 strings), so prefixes are too.
    const byteText = (text: string) => Buffer.from(text, 'utf8').toString('latin1')
    this.root = new PrefixRoute(
      config.routes.map((route) => ({ prefix: byteText(route.prefix), route: pools.get(route.pool)!, name: route.pool })),
      { route: pools.get(config.defaultPool)!, name: config.defaultPool },
    )
    this.health = new HealthMonitor(config.health, destinations, log, onKnockout)
  }

  // Not an async function: one reaction on the route's own promise counts the op out, where
  // async plus try/finally would cost two more promises on every request.
  route(op: Op): Promise<OpResult> {
    this.active++
    let outcome: Promise<OpResult>
    try {
      outcome = this.root.route(op)
    } catch (error) {
      this.settled()
      return Promise.reject(error)
    }
    outcome.then(this.settled, this.settled)
    return outcome
  }

  private readonly settled = (): void => {
    if (--this.active === 0 && this.drained) this.drained()
  }

  explain(key: string): RouteStep[] {
    return this.root.explain(key)
  }

  describe(): unknown {
    return this.root.describe()
  }

  /** Every pool has at least one destination that is not knocked out. */
  get ready(): boolean {
    const pools = new Map<string, boolean>()
    for (const destination of this.destinations) {
      pools.set(destination.id.pool, (pools.get(destination.id.pool) ?? false) || (!destination.health.knockedOut && destination.connected > 0))
    }
    return [...pools.values()].every(Boolean)
  }

  /** Waits for ops in flight (at most graceMs), then closes every connection. */
  async close(graceMs: number): Promise<void> {
    if (this.active > 0) {
      await new Promise<void>((resolve) => {
        this.drained = resolve
        setTimeout(resolve, graceMs).unref()
      })
    }
    this.health.stop()
    for (const destination of this.destinations) destination.close()
  }
}
