// The router's admin HTTP server: /metrics, /healthz, /readyz, /admin/config (the route tree),
// /admin/topology (for direct-mode clients), /admin/route/:key, /admin/hotkeys, /admin/shards, and /admin/shards/:name/* forwarded to that shard's admin.
import proxy from '@fastify/http-proxy'
import type { ShedReason } from '../common/connection-limiter.ts'
import { HttpError } from '../common/http-errors.ts'
import { createHttpServer, type ConnectionSettings } from '../common/http-server.ts'
import { keyFromPath } from '../common/key-api.ts'
import type { Logger } from '../common/logger.ts'
import { formatEndpoint, type DestinationConfig, type RouterConfig } from './config.ts'
import type { RouterMetrics } from './metrics.ts'
import type { PoolLayout, RouteTree } from './route-tree.ts'
import type { ShardDestination } from './shard-destination.ts'

export interface RouterAdminOptions {
  log: Logger
  metrics: RouterMetrics
  /** The admin port's own cap (smaller than the data port's, so health checks get through). */
  connections: ConnectionSettings
  onConnectionShed?(reason: ShedReason): void
  /** With workers, /metrics serves every worker's metrics summed, not this process's own. */
  metricsText?: () => Promise<string>
  tree(): RouteTree
  /** False until the first config is loaded, and again while shutting down. */
  started(): boolean
  reloads(): { generation: number; lastError: string | null; loadedAt: string }
}

export async function createRouterAdmin(options: RouterAdminOptions) {
  const { metrics } = options
  const app = createHttpServer({
    log: options.log,
    name: 'admin port',
    connections: options.connections,
    onConnectionShed: options.onConnectionShed,
    maxJsonDepth: () => options.tree().config.limits.maxJsonDepth,
  })

  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType)
    return options.metricsText ? options.metricsText() : metrics.registry.metrics()
  })
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    if (!options.started()) return reply.code(503).send({ error: 'not started', code: 'not_ready' })
    if (!options.tree().ready) return reply.code(503).send({ error: 'a pool has no healthy destination', code: 'not_ready' })
    return { status: 'ready' }
  })
  app.get('/admin/config', async () => {
    const tree = options.tree()
    return { file: tree.config.file, ...options.reloads(), tree: tree.describe() }
  })
  app.get('/admin/topology', async () => {
    const tree = options.tree()
    return { generation: options.reloads().generation, config: topologyConfig(tree.config), migrations: openMigrations(tree.layouts) }
  })
  app.get<{ Params: { key: string } }>('/admin/route/:key', async (request) => {
    const key = keyFromPath(request.params.key, options.tree().config.limits.maxKeyBytes)
    return { key: request.params.key, steps: options.tree().explain(key) }
  })
  app.get('/admin/hotkeys', async () => ({
    pools: Object.fromEntries(options.tree().hotKeyRoutes.map((route) => [route.pool, route.heavyHitters().map((hitter) => ({
      key: Buffer.from(hitter.key, 'latin1').toString('utf8'),
      ratePerSecond: Math.round(hitter.rate),
      share: Number(hitter.share.toFixed(5)),
      spread: hitter.hot,
    }))])),
  }))
  app.get('/admin/shards', async () => ({
    destinations: await Promise.all(options.tree().destinations.map(async (d) => ({ ...describeDestination(d), replication: await replicationOf(d) }))),
  }))

  // /admin/shards/s0/stats -> s0's primary admin /stats; /admin/shards/s0.replica1/… -> its first replica.
  const adminOf = (name: string): ShardDestination | undefined =>
    options.tree().destinations.find((d) => (d.id.role === 'primary' ? d.id.shard : `${d.id.shard}.replica${d.id.index}`) === name)
  // The proxy passes bodies through unparsed with parsers of its own, which fastify lets it add
  // only where no custom JSON parser (ours bounds nesting depth) is in place: its own scope.
  await app.register(async (scope) => {
    scope.removeContentTypeParser('application/json')
    await scope.register(proxy, {
      // No base upstream: reply-from would send every request to its origin, ignoring getUpstream.
      upstream: '',
      prefix: '/admin/shards/:name',
      rewritePrefix: '',
      // One log line per proxied request is the access log's job, and that is off by default.
      disableRequestLogging: true,
      preHandler: async (request) => {
        const name = (request.params as { name: string }).name
        const destination = adminOf(name)
        if (!destination) throw new HttpError(404, 'unknown_shard', `no shard or replica named "${name}"`)
        if (!destination.id.admin) throw new HttpError(404, 'no_admin_address', `the config gives no admin address for ${name}`)
      },
      replyOptions: {
        getUpstream: (request) => `http://${formatEndpoint(adminOf((request.params as { name: string }).name)!.id.admin!)}`,
      },
    })
  })
  return app
}

/**
 * The part of the config a direct-mode client (client/topology.ts) builds the same route tree from,
 * in the config file's own format, so the client validates it with the router's own parser:
 *
 *   { "generation": 3,          // the router's config generation (1 = the config it started with)
 *     "config": {
 *       "pools": { "<pool>": { "hotKeys": {…}, "shards": [{ "name": "s0", "primary": "host:port",
 *                                                           "replicas": ["host:port"], "draining": false }] } },
 *       "routes": [{ "prefix": "…", "pool": "<pool>" }], "defaultPool": "<pool>",
 *       "hashing": {…}, "migration": {…}, "health": {…}, "connections": {…}, "limits": {…} },
 *     "migrations": { "<pool>": { "msLeft": 1200000,   // the pools with a migration window open
 *                                 "previousRings": [{ "shards": ["s0", "s1"], "pointsPerShard": 8000 }] } } }
 *
 * Field by field, so that what a config gains later (listen addresses, shard admin addresses,
 * credentials) stays out until it is added here. Shard addresses are their RESP ports. The limits
 * go whole: a client applies maxKeyBytes and maxValueBytes, and the others are checked against them.
 */
export function topologyConfig(config: RouterConfig) {
  const address = (destination: DestinationConfig) => formatEndpoint(destination.address)
  return {
    pools: Object.fromEntries(Object.entries(config.pools).map(([name, pool]) => [name, {
      hotKeys: pool.hotKeys,
      shards: pool.shards.map((shard) => ({ name: shard.name, primary: address(shard.primary), replicas: shard.replicas.map(address), draining: shard.draining })),
    }])),
    routes: config.routes,
    defaultPool: config.defaultPool,
    hashing: config.hashing,
    migration: config.migration,
    health: config.health,
    connections: config.connections,
    limits: config.limits,
  }
}

/**
 * Each pool's open migration window: the rings its keys hashed onto before (newest first) and the
 * milliseconds left, so that a client that starts during a window reads through as the router does.
 */
export function openMigrations(layouts: ReadonlyMap<string, PoolLayout>, now = Date.now()) {
  const open = [...layouts].filter(([, { migration }]) => migration.rings.length > 0 && migration.deadline > now)
  return Object.fromEntries(open.map(([pool, { migration }]) => [pool, {
    msLeft: migration.deadline - now,
    previousRings: migration.rings.map((ring) => ({ shards: ring.nodes, pointsPerShard: ring.pointsPerNode })),
  }]))
}

/** How long /admin/shards waits for a shard's /stats before saying it could not tell. */
const SHARD_STATS_TIMEOUT_MS = 500

// The replication part of the shard's own /stats: role, offset, peers and their lag, links.
async function replicationOf(d: ShardDestination): Promise<unknown> {
  if (!d.id.admin) return { error: 'the config gives no admin address for this destination' }
  try {
    const response = await fetch(`http://${formatEndpoint(d.id.admin)}/stats`, { signal: AbortSignal.timeout(SHARD_STATS_TIMEOUT_MS) })
    if (!response.ok) return { error: `its /stats answered ${response.status}` }
    return ((await response.json()) as { replication?: unknown }).replication ?? { error: 'its /stats has no replication section' }
  } catch (error) {
    return { error: `its /stats could not be read: ${(error as Error).message}` }
  }
}

function describeDestination(d: ShardDestination) {
  return {
    name: d.name,
    pool: d.id.pool,
    shard: d.id.shard,
    role: d.id.role,
    address: d.address,
    admin: d.id.admin ? formatEndpoint(d.id.admin) : null,
    knockedOut: d.health.knockedOut,
    knockedOutSince: d.health.knockedOutAt ? new Date(d.health.knockedOutAt).toISOString() : null,
    knockouts: d.health.knockouts,
    consecutiveFailures: d.health.consecutiveFailures,
    lastError: d.health.lastError,
    connections: d.connected,
    inFlight: d.inFlight,
    queued: d.queued,
  }
}
