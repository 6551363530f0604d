// The router's admin HTTP server: /metrics, /healthz, /readyz, /admin/config (the route tree),
// /admin/topology (for direct-mode clients), /admin/route/:key, /admin/hotkeys, /admin/shards, and /admin/shards/:name/* forwarded to that shard's admin.
// With tenants, everything but the health probes (and /metrics, when the config leaves it open) is for admin tokens.
import proxy from '@fastify/http-proxy'
import { Agent, buildConnector } from 'undici'
import type { ShedReason } from '../common/connection-limiter.ts'
import { HttpError, errorBody } from '../common/http-errors.ts'
import { createHttpServer, type ConnectionSettings, type HttpServerOptions } from '../common/http-server.ts'
import { keyFromPath } from '../common/key-api.ts'
import type { Logger } from '../common/logger.ts'
import type { ServerTls } from '../common/tls-files.ts'
import { formatEndpoint, type DestinationConfig, type Endpoint, type RouterConfig } from './config.ts'
import type { RouterMetrics } from './metrics.ts'
import type { PoolLayout, RouteTree } from './route-tree.ts'
import type { ShardAccess } from './shard-access.ts'
import type { ShardDestination } from './shard-destination.ts'
import { bearerToken } from '../common/secrets.ts'
import { NAMESPACE_SEPARATOR, type Tenant, type TenantAccess } from './tenants.ts'

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
  /** Serve HTTPS with these certificates. */
  tls?: ServerTls
  onTlsFailure?: HttpServerOptions['onTlsFailure']
}

/** What answers without a token even with tenants: probes must work without credentials. */
const HEALTH_PROBES = new Set(['/healthz', '/readyz'])

export async function createRouterAdmin(options: RouterAdminOptions) {
  const { metrics } = options
  const app = createHttpServer({
    log: options.log,
    name: 'admin port',
    connections: options.connections,
    onConnectionShed: options.onConnectionShed,
    maxJsonDepth: () => options.tree().config.limits.maxJsonDepth,
    tls: options.tls,
    onTlsFailure: options.onTlsFailure,
  })

  // A callback hook, before routing to any handler (the proxied routes too): what is refused here reaches no shard.
  app.addHook('onRequest', (request, reply, done) => {
    const tree = options.tree()
    const route = request.routeOptions.url ?? ''
    if (tree.access.open || HEALTH_PROBES.has(route) || (route === '/metrics' && tree.config.admin.metrics === 'open')) return done()
    const tenant = tree.access.authenticate(bearerToken(request.headers.authorization))
    if (typeof tenant === 'string') {
      tree.authFailures.record(tenant, request.ip, 'admin')
      reply.code(401).header('www-authenticate', 'Bearer realm="shardline"').type('application/json')
        .send(errorBody(tenant === 'missing_token' ? 'the admin port needs an admin tenant\'s token: Authorization: Bearer <token>' : 'the token is not valid', 'unauthorized'))
      return
    }
    if (!tenant.permissions.has('admin')) {
      tree.authFailures.record('forbidden', request.ip, 'admin')
      reply.code(403).type('application/json').send(errorBody(`tenant ${tenant.name} has no admin permission`, 'forbidden'))
      return
    }
    done()
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
    return { file: tree.config.file, ...options.reloads(), ...securityConfig(tree.config), tree: tree.describe() }
  })
  app.get('/admin/topology', async () => {
    const tree = options.tree()
    return { generation: options.reloads().generation, config: topologyConfig(tree.config), migrations: openMigrations(tree.layouts) }
  })
  // ?tenant=<name>: the key as that tenant sends it, routed within its namespace and pool.
  app.get<{ Params: { key: string }; Querystring: { tenant?: unknown } }>('/admin/route/:key', async (request) => {
    const tree = options.tree()
    const tenant = tenantNamed(tree.access, request.query.tenant)
    const key = keyFromPath(request.params.key, tree.config.limits.maxKeyBytes)
    return { key: request.params.key, tenant: tenant?.name ?? null, steps: tree.explain(key, tenant ?? undefined) }
  })
  // Each hot key with its tenant, as the tenant sends it; ?tenant=<name>: that tenant's only.
  app.get<{ Querystring: { tenant?: unknown } }>('/admin/hotkeys', async (request) => {
    const tree = options.tree()
    const only = tenantNamed(tree.access, request.query.tenant)
    const owners = namespaceOwners(tree.access)
    return {
      pools: Object.fromEntries(tree.hotKeyRoutes.map((route) => [route.pool, route.heavyHitters().flatMap((hitter) => {
        const separator = hitter.key.indexOf(NAMESPACE_SEPARATOR)
        const owner = separator < 0 ? undefined : owners.get(hitter.key.slice(0, separator + 1))
        // A tenant without a namespace (an admin) sends the keys outside every namespace.
        if (only && (owner === undefined ? only.keyPrefix !== '' : owner.keyPrefix !== only.keyPrefix)) return []
        return [{
          key: Buffer.from(owner === undefined ? hitter.key : hitter.key.slice(owner.keyPrefix.length), 'latin1').toString('utf8'),
          tenant: owner?.name ?? null,
          ratePerSecond: Math.round(hitter.rate),
          share: Number(hitter.share.toFixed(5)),
          spread: hitter.hot,
        }]
      })])),
    }
  })
  const shardAdmins = new ShardAdmins(() => options.tree().shardAccess)
  app.addHook('onClose', async () => shardAdmins.close())
  app.get('/admin/shards', async () => ({
    destinations: await Promise.all(options.tree().destinations.map(async (d) => ({ ...describeDestination(d), replication: await shardAdmins.replicationOf(d) }))),
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
      undici: shardAdmins.agent,
      replyOptions: {
        getUpstream: (request) => shardAdmins.origin(adminOf((request.params as { name: string }).name)!.id.admin!),
        // The caller's admin token is the router's to check, never a shard's to see: the shard gets the router's own credential.
        rewriteRequestHeaders: (_request, headers) => shardAdmins.headers(headers),
        // reply-from calls what it does not classify (a certificate the CA did not sign, a dropped connection) a 500: it is the shard's side that failed.
        onError: (reply, { error }) => reply.send((error as { statusCode?: number }).statusCode === 500 ? new HttpError(502, 'upstream_error', `the shard's admin could not be reached: ${error.message}`) : error),
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

/** The tenant a ?tenant= names (none when absent); an unknown name is a 404, not everyone's view. */
function tenantNamed(access: TenantAccess, name: unknown): Tenant | null {
  if (name === undefined) return null
  const tenant = typeof name === 'string' ? access.byName(name) : undefined
  if (!tenant) throw new HttpError(404, 'unknown_tenant', `no tenant named ${JSON.stringify(name).slice(0, 100)}`)
  return tenant
}

/** Each namespace's key prefix with the tenant a key under it is shown as (the first declared, when tenants share one). */
function namespaceOwners(access: TenantAccess): Map<string, Tenant> {
  const owners = new Map<string, Tenant>()
  for (const tenant of access.tenants) if (tenant.keyPrefix !== '' && !owners.has(tenant.keyPrefix)) owners.set(tenant.keyPrefix, tenant)
  return owners
}

/**
 * The security settings without their secrets: who the tenants are and what they may do, whether a
 * shard password is set, which files hold certificates; the region, how many passwords admit its
 * peers, and what each pool takes from them.
 */
function securityConfig(config: RouterConfig) {
  return {
    region: config.region === null ? null : {
      name: config.region.name,
      id: config.region.id,
      passwords: config.region.passwords.length,
      pools: Object.fromEntries(Object.entries(config.pools).map(([name, pool]) => [name, pool.region])),
    },
    tenants: config.tenants.map(({ name, permissions, namespace, pool, rateLimit }) => ({ name, permissions, namespace, pool, rateLimit })),
    tls: config.tls,
    admin: config.admin,
    shardAccess: { password: config.shardAccess.password === null ? null : '(set)', tls: config.shardAccess.tls },
  }
}

/** How long /admin/shards waits for a shard's /stats before saying it could not tell. */
const SHARD_STATS_TIMEOUT_MS = 500

/**
 * Requests to shards' admin ports, as the shard access says: HTTPS verified against its CA (read
 * at each connect, so a renewed CA applies) and its password as the bearer token.
 */
class ShardAdmins {
  readonly agent: Agent
  private readonly access: () => ShardAccess

  constructor(access: () => ShardAccess) {
    this.access = access
    this.agent = new Agent({
      connect: (target, callback) => {
        const tls = access().tls
        const options = tls && target.protocol === 'https:' ? tls.connectOptions(target.hostname) : {}
        // A configured serverName wins over the host name undici would send. The connect has its own
        // deadline: an abort signal does not end a connect to a cut-off host, which would hold
        // /admin/shards past the stats' 500 ms for the OS's connect timeout.
        buildConnector({ ...options, timeout: SHARD_STATS_TIMEOUT_MS })({ ...target, servername: options.servername ?? target.servername }, callback)
      },
    })
  }

  origin(admin: Endpoint): string {
    return `${this.access().tls ? 'https' : 'http'}://${formatEndpoint(admin)}`
  }

  headers(headers: Record<string, string | string[] | undefined>): Record<string, string | string[] | undefined> {
    const forwarded = { ...headers }
    delete forwarded.authorization
    const password = this.access().password
    if (password) forwarded.authorization = `Bearer ${password()}`
    return forwarded
  }

  // The replication part of the shard's own /stats: role, offset, peers and their lag, links.
  async replicationOf(d: ShardDestination): Promise<unknown> {
    if (!d.id.admin) return { error: 'the config gives no admin address for this destination' }
    try {
      const response = await this.agent.request({ origin: this.origin(d.id.admin), path: '/stats', method: 'GET', headers: this.headers({}), signal: AbortSignal.timeout(SHARD_STATS_TIMEOUT_MS) })
      if (response.statusCode !== 200) {
        await response.body.dump()
        return { error: `its /stats answered ${response.statusCode}` }
      }
      return ((await response.body.json()) as { replication?: unknown }).replication ?? { error: 'its /stats has no replication section' }
    } catch (error) {
      return { error: `its /stats could not be read: ${(error as Error).message}` }
    }
  }

  close(): Promise<void> {
    return this.agent.close()
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
