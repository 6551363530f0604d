// Builds the route tree a config describes (tenant -> prefix -> hot keys -> [warm-up] -> pool -> failover ->
// destinations, and per pool a region route for peer regions' writes) with its own tenants, region
// passwords, connections and health monitor, counts ops in flight, and closes once drained.
import type { Logger } from '../common/logger.ts'
import { HashRing } from '../common/ring.ts'
import { AuthFailures } from './auth-failures.ts'
import type { PoolConfig, RouterConfig } from './config.ts'
import { HealthMonitor } from './health-monitor.ts'
import type { HotKeyMetrics, WarmUpMetrics } from './metrics.ts'
import { type Migration, nextMigration, sameOwners } from './migration-window.ts'
import { poolRing } from './pool-layout.ts'
import { RegionAccess } from './region-access.ts'
import { RegionRoute, type RawRoute } from './region-route.ts'
import { FailoverRoute } from './routes/failover-route.ts'
import { HotKeyRoute } from './routes/hot-key-route.ts'
import { type PoolRoute, RingPoolRoute } from './routes/pool-route.ts'
import { PrefixRoute } from './routes/prefix-route.ts'
import type { Op, OpResult, RawOp, RawResult, Route, RouteStep } from './routes/route.ts'
import { TenantRoute } from './routes/tenant-route.ts'
import { WarmUpRoute } from './routes/warm-up-route.ts'
import { ShardAccess } from './shard-access.ts'
import { ShardDestination } from './shard-destination.ts'
import { TenantAccess, type AuthFailure, type Tenant } from './tenants.ts'

/** What a reload carries from one tree to the next, per pool: where keys hash, and the running window. */
export interface PoolLayout {
  ring: HashRing
  migration: Migration
}

/** What a new tree takes from the one before it: its config and its pools' layouts. */
export type PreviousLayouts = Pick<RouteTree, 'config' | 'layouts'>

/** What the tree's routes report; authFailures is absent in a direct-mode client, which has no tenants. */
export interface RouteTreeMetrics {
  hotKeys: HotKeyMetrics
  warmUp: WarmUpMetrics
  authFailures?: { inc(labels: { reason: AuthFailure }): void }
}

export class RouteTree {
  readonly config: RouterConfig
  readonly generation: number
  readonly destinations: readonly ShardDestination[]
  readonly hotKeyRoutes: HotKeyRoute[] = []
  readonly layouts = new Map<string, PoolLayout>()
  /** The config's tenants; a reload swaps them with the tree. */
  readonly access: TenantAccess
  /** How every destination of the tree reaches its shard (TLS, password); closed with the tree. */
  readonly shardAccess: ShardAccess
  /** Where every port reports a request refused for its credentials. */
  readonly authFailures: AuthFailures
  /** Who may send peer regions' writes (the config's region passwords); a reload swaps it with the tree. */
  readonly regionAccess: RegionAccess
  /** Each pool's route for peer regions' writes (SL.REGION.APPLY), by pool name. */
  readonly regionRoutes = new Map<string, RegionRoute>()
  private readonly warmUpRoutes = new Map<string, WarmUpRoute>()
  private readonly root: TenantRoute
  private readonly health: HealthMonitor
  private active = 0
  private drained: (() => void) | null = null

  /**
   * previous: the tree this one replaces on a reload, whose layouts open or carry migration windows
   * (or, for a direct-mode client's first tree, the windows its router has open).
   */
  constructor(config: RouterConfig, generation: number, log: Logger, onKnockout: (destination: ShardDestination) => void, metrics: RouteTreeMetrics, previous?: PreviousLayouts) {
    this.config = config
    this.generation = generation
    // First: a token file that cannot be read refuses the config before any connection opens.
    this.access = new TenantAccess(config.tenants, log)
    try {
      this.regionAccess = new RegionAccess(config, log)
    } catch (error) {
      this.access.close()
      throw error
    }
    try {
      this.shardAccess = new ShardAccess(config.shardAccess, (problem) => log.error(problem))
    } catch (error) {
      this.access.close()
      this.regionAccess.close()
      throw error
    }
    this.authFailures = new AuthFailures(log, (reason) => metrics.authFailures?.inc({ reason }))
    const destinations: ShardDestination[] = []
    const pools = new Map<string, Route>()
    for (const [poolName, pool] of Object.entries(config.pools)) {
      const shards = new Map<string, FailoverRoute>()
      for (const shard of pool.shards) {
        const chain = [shard.primary, ...shard.replicas].map((destination, index) => new ShardDestination({
          pool: poolName,
          shard: shard.name,
          role: index === 0 ? 'primary' : 'replica',
          index,
          endpoint: destination.address,
          admin: destination.admin,
        }, config.connections, this.shardAccess))
        destinations.push(...chain)
        shards.set(shard.name, new FailoverRoute(shard.name, chain))
      }
      metrics.warmUp.declarePool(poolName)
      const route = this.poolRoute(poolName, pool, shards, log, metrics.warmUp, previous)
      const hotKeys = new HotKeyRoute(poolName, route, pool.hotKeys, metrics.hotKeys)
      this.hotKeyRoutes.push(hotKeys)
      pools.set(poolName, hotKeys)
    }
    this.destinations = destinations
    // Keys are compared as their UTF-8 bytes (latin1 strings), so prefixes are too.
    const byteText = (text: string) => Buffer.from(text, 'utf8').toString('latin1')
    const prefix = new PrefixRoute(
      config.routes.map((route) => ({ prefix: byteText(route.prefix), route: pools.get(route.pool)!, name: route.pool })),
      { route: pools.get(config.defaultPool)!, name: config.defaultPool },
    )
    this.root = new TenantRoute(prefix, pools, this.access.tenants, config.limits.maxKeyBytes)
    this.health = new HealthMonitor(config.health, destinations, log, onKnockout)
  }

  // The pool's ring (the previous tree's, when the owners are the same), and the warm-up node over it
  // while a migration window is open or shards drain; otherwise the pool route alone.
  private poolRoute(poolName: string, pool: PoolConfig, shards: Map<string, FailoverRoute>, log: Logger, metrics: WarmUpMetrics, previous: PreviousLayouts | undefined): PoolRoute {
    const before = previous?.layouts.get(poolName)
    if (previous?.config.pools[poolName]) warnOfRemovedOwners(log, poolName, previous.config.pools[poolName], pool)
    const built = poolRing(pool, this.config.hashing.pointsPerShard)
    const ring = before && sameOwners(before.ring, built) ? before.ring : built
    const migration = nextMigration(before, ring, this.config.migration.windowMs, Date.now())
    this.layouts.set(poolName, { ring, migration })
    const next = new RingPoolRoute(poolName, shards, ring)
    this.regionRoutes.set(poolName, new RegionRoute(poolName, pool.region, shards, ring, pool.hotKeys))
    const drainingRing = ring.nodes.length < pool.shards.length ? new HashRing(pool.shards.map((shard) => shard.name), this.config.hashing.pointsPerShard) : null
    if (migration.rings.length === 0 && !drainingRing) return next
    const warmUp = new WarmUpRoute({ next, migration, drainingRing, hotKeys: pool.hotKeys, metrics, log })
    this.warmUpRoutes.set(poolName, warmUp)
    log.info({ pool: poolName, previousRings: migration.rings.map((r) => r.nodes), windowSeconds: warmUp.windowSecondsLeft(), draining: drainingRing !== null }, 'warm-up: reads that miss on a key\'s new owner read its previous owners')
    return warmUp
  }

  route(op: Op): Promise<OpResult> {
    return this.counted(this.root, op)
  }

  /** A peer region's op through a pool's region route (or one of its shards), counted in flight as route's. */
  routeRegion(route: RawRoute, op: RawOp): Promise<RawResult> {
    return this.counted(route, op)
  }

  // Not an async function: one reaction on the route's own promise counts the op out, where
  // async plus try/finally would cost two more promises on every request.
  private counted<O, R>(route: { route(op: O): Promise<R> }, op: O): Promise<R> {
    this.active++
    let outcome: Promise<R>
    try {
      outcome = route.route(op)
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

  /** tenant: the key as that tenant sends it (within its namespace and pool). */
  explain(key: string, tenant?: Tenant): RouteStep[] {
    return this.root.explain(key, tenant)
  }

  describe(): unknown {
    return this.root.describe()
  }

  /** Seconds left of each pool's migration window, 0 when none. */
  migrationWindowSeconds(): Map<string, number> {
    return new Map(Object.keys(this.config.pools).map((pool) => [pool, this.warmUpRoutes.get(pool)?.windowSecondsLeft() ?? 0]))
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
    this.access.close()
    this.regionAccess.close()
    for (const destination of this.destinations) destination.close()
    this.shardAccess.close()
  }
}

// Keys on a shard that leaves the config are out of every ring the router reads: only a shard that
// was draining (and emptied by rebalance) leaves without losing them.
function warnOfRemovedOwners(log: Logger, pool: string, before: PoolConfig, after: PoolConfig): void {
  const kept = new Set(after.shards.map((shard) => shard.name))
  const removed = before.shards.filter((shard) => !kept.has(shard.name) && !shard.draining).map((shard) => shard.name)
  if (removed.length > 0) log.warn({ pool, shards: removed }, 'shards that owned keys left the config: the keys they hold cannot be read through and are lost to this router (drain first: draining: true, reload, rebalance, then remove)')
}
