// The router's YAML config: pools of shards (some draining), prefix routes, hashing, the migration
// window, health, connections, limits and listen addresses; ${ENV} interpolation; JSON Schema validation with file:line errors.
import { readFileSync } from 'node:fs'
import { RESP_REQUEST_OVERHEAD_BYTES } from '../common/limits.ts'
import { secretSourceSchema, type SecretSource } from '../common/secrets.ts'
import { clientTlsSchema, serverTlsSchema, type ClientTlsFiles, type ServerTlsFiles } from '../common/tls-files.ts'
import { REGION_MODES, REGION_USER, routerRegionSchema, type RegionMode, type RouterRegionConfig } from '../common/region.ts'
import { ConfigError, compileSchema, interpolateEnv, parseYaml, validateOrThrow } from '../common/validate.ts'

export interface Endpoint {
  host: string
  port: number
}

export interface DestinationConfig {
  address: Endpoint
  /** The shard process's admin HTTP, for /admin/shards/:name/* (optional). */
  admin?: Endpoint
}

export interface ShardConfig {
  name: string
  primary: DestinationConfig
  replicas: DestinationConfig[]
}

/** A shard as a pool lists it: where it is, and whether it is being emptied. */
export interface PoolShardConfig extends ShardConfig {
  /** Owns no keys on the ring; still read through by the warm-up route until rebalance empties it. */
  draining: boolean
}

export interface HotKeyConfig {
  enabled: boolean
  share: number
  rate?: number
  minRate: number
  copies: number
  copyTtlMs: number
  counterShards: number
  counterWindowMs: number
}

export interface PoolConfig {
  shards: PoolShardConfig[]
  hotKeys: HotKeyConfig
  /** What of this pool peer regions may write here (SL.REGION.APPLY): as the peers' shards ship it. */
  region: RegionMode
}

export type Permission = 'read' | 'write' | 'admin'

/** A tenant: who holds its tokens, what it may do, where its keys live. */
export interface TenantConfig {
  name: string
  /** Several at once, so a token can be rotated in before the old one is removed. */
  tokens: SecretSource[]
  permissions: Permission[]
  /** Its keys live under "<namespace>:" on the wire; null only for an admin tenant (it sees every key). */
  namespace: string | null
  /** Every key of the tenant goes to this pool; null: the prefix routes decide, as for everyone. */
  pool: string | null
  /** A token bucket per router: rate ops/s, burst ops; shadow counts what it would refuse, refusing none. */
  rateLimit: { rate: number; burst: number; mode: 'enforce' | 'shadow' } | null
}

/** How the router reaches its shards as an internal peer. */
export interface ShardAccessConfig {
  /** The shards' internal credential (AUTH shardline <password>); also the bearer token for their admin HTTP. */
  password: SecretSource | null
  /** RESP (and admin HTTP) to shards over TLS, verified against this CA. */
  tls: ClientTlsFiles | null
}

export interface RouterConfig {
  /** Where the config came from (shown in errors and /admin/config). */
  file: string
  /** resp: the optional RESP (Redis protocol) front; absent, it is off. */
  listen: { data: Endpoint; admin: Endpoint; resp?: Endpoint }
  pools: Record<string, PoolConfig>
  routes: { prefix: string; pool: string }[]
  defaultPool: string
  hashing: { algorithm: 'ring'; pointsPerShard: number }
  /** windowMs: how long after a reload that changed key ownership reads go through to the previous owners; 0 is off. */
  migration: { windowMs: number }
  health: { heartbeatMs: number; failuresBeforeKnockout: number; probeInitialMs: number; probeMaxMs: number; maxKnockedOutFraction: number }
  connections: { perDestination: number; timeoutMs: number; connectTimeoutMs: number; maxQueue: number }
  /**
   * Per-request limits follow each reload; the connection ones (maxConnections,
   * maxAdminConnections, maxRespConnections, idleTimeoutMs, requestTimeoutMs, maxRespQueryBufferBytes)
   * are read at start (take effect on restart).
   */
  limits: {
    maxKeyBytes: number
    maxValueBytes: number
    maxBatchOps: number
    maxBatchResponseBytes: number
    maxInFlightResponseBytes: number
    maxJsonDepth: number
    maxConnections: number
    maxAdminConnections: number
    idleTimeoutMs: number
    requestTimeoutMs: number
    maxRespConnections: number
    maxRespPipeline: number
    maxRespQueryBufferBytes: number
    maxRespOutputBytes: number
  }
  accessLog: boolean
  workers: number
  /** Empty: the router is open (anyone who reaches a port may do anything), as the quick start is. */
  tenants: TenantConfig[]
  /** With it, the data, admin and RESP ports serve TLS (read at start; the files are reloaded when they change). */
  tls: ServerTlsFiles | null
  /** metrics: whether /metrics needs an admin token (open suits a Prometheus that scrapes without one). */
  admin: { metrics: 'open' | 'token' }
  shardAccess: ShardAccessConfig
  /** This router's region (its versions carry the region's id); null: one region, SL.REGION.* refused. */
  region: RouterRegionConfig | null
}

const HOST_PORT = '^[^\\s:]+:\\d{1,5}$'
const hostPort = { type: 'string', pattern: HOST_PORT, description: 'must be host:port' }
const destination = {
  description: 'must be host:port, or {address: host:port, admin: host:port}',
  oneOf: [
    { type: 'string', pattern: HOST_PORT },
    {
      type: 'object',
      additionalProperties: false,
      required: ['address'],
      properties: { address: hostPort, admin: hostPort },
    },
  ],
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['pools'],
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        data: { ...hostPort, default: '127.0.0.1:8080' },
        admin: { ...hostPort, default: '127.0.0.1:9090' },
        resp: hostPort,
      },
    },
    pools: {
      type: 'object',
      minProperties: 1,
      propertyNames: { pattern: '^[A-Za-z0-9_-]+$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['shards'],
        properties: {
          region: { enum: REGION_MODES, default: 'none' },
          hotKeys: {
            type: 'object',
            additionalProperties: false,
            default: {},
            properties: {
              enabled: { type: 'boolean', default: true },
              share: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.005 },
              rate: { type: 'number', exclusiveMinimum: 0 },
              minRate: { type: 'number', minimum: 0, default: 50 },
              copies: { type: 'integer', minimum: 2, maximum: 64, default: 8 },
              copyTtlMs: { type: 'integer', minimum: 10, default: 2000 },
              counterShards: { type: 'integer', minimum: 1, maximum: 64, default: 8 },
              counterWindowMs: { type: 'integer', minimum: 10, maximum: 100, default: 50 },
            },
          },
          shards: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['name', 'primary'],
              properties: {
                name: { type: 'string', pattern: '^[A-Za-z0-9._-]+$' },
                primary: destination,
                replicas: { type: 'array', items: destination, default: [] },
                draining: { type: 'boolean', default: false },
              },
            },
          },
        },
      },
    },
    routes: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['prefix', 'pool'],
        properties: { prefix: { type: 'string', minLength: 1 }, pool: { type: 'string' } },
      },
    },
    defaultPool: { type: 'string' },
    hashing: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        algorithm: { enum: ['ring'], default: 'ring' },
        pointsPerShard: { type: 'integer', minimum: 1, maximum: 100000, default: 8000 },
      },
    },
    migration: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        windowMs: { type: 'integer', minimum: 0, maximum: 7 * 24 * 3_600_000, default: 30 * 60_000 },
      },
    },
    health: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        heartbeatMs: { type: 'integer', minimum: 10, default: 500 },
        failuresBeforeKnockout: { type: 'integer', minimum: 1, default: 3 },
        probeInitialMs: { type: 'integer', minimum: 10, default: 200 },
        probeMaxMs: { type: 'integer', minimum: 10, default: 5000 },
        maxKnockedOutFraction: { type: 'number', minimum: 0, maximum: 1, default: 0.5 },
      },
    },
    connections: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        perDestination: { type: 'integer', minimum: 1, maximum: 64, default: 2 },
        timeoutMs: { type: 'integer', minimum: 1, default: 1000 },
        connectTimeoutMs: { type: 'integer', minimum: 1, default: 1000 },
        maxQueue: { type: 'integer', minimum: 1, default: 8192 },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxKeyBytes: { type: 'integer', minimum: 1, maximum: 65536, default: 250 },
        maxValueBytes: { type: 'integer', minimum: 1, default: 1024 * 1024 },
        maxBatchOps: { type: 'integer', minimum: 1, default: 1000 },
        maxBatchResponseBytes: { type: 'integer', minimum: 1024, default: 16 * 1024 * 1024 },
        maxInFlightResponseBytes: { type: 'integer', minimum: 1024, default: 128 * 1024 * 1024 },
        maxJsonDepth: { type: 'integer', minimum: 1, maximum: 1000, default: 64 },
        maxConnections: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 10_000 },
        maxAdminConnections: { type: 'integer', minimum: 1, maximum: 65536, default: 256 },
        idleTimeoutMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 5000 },
        requestTimeoutMs: { type: 'integer', minimum: 100, maximum: 3_600_000, default: 10_000 },
        maxRespConnections: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 10_000 },
        maxRespPipeline: { type: 'integer', minimum: 1, maximum: 65536, default: 1024 },
        maxRespQueryBufferBytes: { type: 'integer', minimum: 1024, maximum: 1024 ** 3, default: 8 * 1024 * 1024 },
        maxRespOutputBytes: { type: 'integer', minimum: 1024, maximum: 1024 ** 3, default: 8 * 1024 * 1024 },
      },
    },
    accessLog: { type: 'boolean', default: false },
    workers: { type: 'integer', minimum: 1, maximum: 256, default: 1 },
    tenants: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'tokens', 'permissions'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'must be 1-64 letters, digits, _ or -' },
          tokens: { type: 'array', minItems: 1, maxItems: 16, items: secretSourceSchema },
          permissions: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['read', 'write', 'admin'] } },
          // The namespace alphabet has no ":", the separator, so no key of one namespace is a key of another.
          namespace: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'must be 1-64 letters, digits, _, . or -' },
          pool: { type: 'string' },
          rateLimit: {
            type: 'object',
            additionalProperties: false,
            required: ['rate'],
            properties: {
              rate: { type: 'number', exclusiveMinimum: 0, maximum: 1e9 },
              burst: { type: 'number', minimum: 1, maximum: 1e9 },
              mode: { enum: ['enforce', 'shadow'], default: 'enforce' },
            },
          },
        },
      },
    },
    tls: serverTlsSchema,
    admin: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { metrics: { enum: ['open', 'token'], default: 'open' } },
    },
    shardAccess: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { password: secretSourceSchema, tls: clientTlsSchema },
    },
    region: routerRegionSchema,
  },
}

type RawDestination = string | { address: string; admin?: string }
interface RawConfig {
  listen: { data: string; admin: string; resp?: string }
  pools: Record<string, { shards: { name: string; primary: RawDestination; replicas: RawDestination[]; draining: boolean }[]; hotKeys: HotKeyConfig; region: RegionMode }>
  routes: { prefix: string; pool: string }[]
  defaultPool?: string
  hashing: RouterConfig['hashing']
  migration: RouterConfig['migration']
  health: RouterConfig['health']
  connections: RouterConfig['connections']
  limits: RouterConfig['limits']
  accessLog: boolean
  workers: number
  tenants: Array<Omit<TenantConfig, 'namespace' | 'pool' | 'rateLimit'> & { namespace?: string; pool?: string; rateLimit?: { rate: number; burst?: number; mode: 'enforce' | 'shadow' } }>
  tls?: ServerTlsFiles
  admin: RouterConfig['admin']
  shardAccess: { password?: SecretSource; tls?: ClientTlsFiles }
  region?: RouterRegionConfig
}

const validate = compileSchema<RawConfig>(schema)

export function loadRouterConfig(file: string): RouterConfig {
  return parseRouterConfig(readConfigText(file), file)
}

/** The config file's text; a missing or unreadable file is a ConfigError like a bad one. */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (error) {
    throw new ConfigError(`${file}: cannot read the config: ${(error as Error).message}`)
  }
}

export function parseRouterConfig(text: string, file: string): RouterConfig {
  const parsed = parseYaml({ file, text: interpolateEnv(text, file) })
  const raw = validateOrThrow(validate, parsed.data ?? {}, { file, lineOf: parsed.lineOf })
  const problems: string[] = []
  const at = (path: string[], message: string) => {
    const line = parsed.lineOf(path)
    problems.push(`${file}${line ? `:${line}` : ''}: ${path.reduce((text, step) => (/^\d+$/.test(step) ? `${text}[${step}]` : text ? `${text}.${step}` : step), '')}: ${message}`)
  }
  const poolNames = Object.keys(raw.pools)
  const defaultPool = raw.defaultPool ?? (poolNames.length === 1 ? poolNames[0] : undefined)
  if (defaultPool === undefined) at(['defaultPool'], 'must name the pool for keys no route matches (required with more than one pool)')
  else if (!raw.pools[defaultPool]) at(['defaultPool'], `names no pool (pools: ${poolNames.join(', ')})`)
  raw.routes.forEach((route, i) => {
    if (!raw.pools[route.pool]) at(['routes', String(i), 'pool'], `names no pool (pools: ${poolNames.join(', ')})`)
  })
  // The largest value must fit a single read's share of the router's response budget.
  if (raw.limits.maxInFlightResponseBytes < raw.limits.maxValueBytes) {
    at(['limits', 'maxInFlightResponseBytes'], `must be at least limits.maxValueBytes (${raw.limits.maxValueBytes})`)
  }
  if (raw.limits.maxBatchResponseBytes > raw.limits.maxInFlightResponseBytes) {
    at(['limits', 'maxBatchResponseBytes'], `must be at most limits.maxInFlightResponseBytes (${raw.limits.maxInFlightResponseBytes})`)
  }
  // A request carrying the largest value must fit the RESP front's query buffer.
  if (raw.limits.maxRespQueryBufferBytes < raw.limits.maxValueBytes + RESP_REQUEST_OVERHEAD_BYTES) {
    at(['limits', 'maxRespQueryBufferBytes'], `must be at least limits.maxValueBytes + 64 KiB (${raw.limits.maxValueBytes + RESP_REQUEST_OVERHEAD_BYTES})`)
  }
  const tenantNames = new Set<string>()
  raw.tenants.forEach((tenant, i) => {
    if (tenantNames.has(tenant.name)) at(['tenants', String(i), 'name'], `duplicate tenant name "${tenant.name}"`)
    tenantNames.add(tenant.name)
    if (tenant.namespace === undefined && !tenant.permissions.includes('admin')) at(['tenants', String(i)], `tenant ${tenant.name} needs a namespace (only an admin tenant may work on every key)`)
    if (tenant.pool !== undefined && !raw.pools[tenant.pool]) at(['tenants', String(i), 'pool'], `names no pool (pools: ${poolNames.join(', ')})`)
    if (tenant.name === REGION_USER && raw.region) at(['tenants', String(i), 'name'], `the name ${REGION_USER} is taken by peer regions (AUTH ${REGION_USER} <password>)`)
  })
  const seenAddresses = new Map<string, string>()
  const pools: RouterConfig['pools'] = {}
  for (const [poolName, pool] of Object.entries(raw.pools)) {
    const names = new Set<string>()
    if (pool.shards.every((shard) => shard.draining)) at(['pools', poolName, 'shards'], `every shard of pool ${poolName} is draining: at least one must own its keys`)
    if (pool.region !== 'none' && !raw.region) at(['pools', poolName, 'region'], `pool ${poolName} takes region writes (${pool.region}) but the router has no region: set region.name and region.id`)
    pools[poolName] = {
      hotKeys: pool.hotKeys,
      region: pool.region,
      shards: pool.shards.map((shard, i) => {
        const path = ['pools', poolName, 'shards', String(i)]
        if (names.has(shard.name)) at([...path, 'name'], `duplicate shard name "${shard.name}" in pool ${poolName}`)
        names.add(shard.name)
        const toDestination = (rawDestination: RawDestination, where: string[]): DestinationConfig => {
          const address = typeof rawDestination === 'string' ? rawDestination : rawDestination.address
          const previous = seenAddresses.get(address)
          // Port 0 ("pick one") is for `shardline cluster`, which fills in the real ports.
          if (previous && !address.endsWith(':0')) at(where, `address ${address} is already used by ${previous}`)
          seenAddresses.set(address, `${poolName}/${shard.name}`)
          const admin = typeof rawDestination === 'string' ? undefined : rawDestination.admin
          return { address: toEndpoint(address), ...(admin ? { admin: toEndpoint(admin) } : {}) }
        }
        return {
          name: shard.name,
          primary: toDestination(shard.primary, [...path, 'primary']),
          replicas: shard.replicas.map((replica, r) => toDestination(replica, [...path, 'replicas', String(r)])),
          draining: shard.draining,
        }
      }),
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'))
  return {
    file,
    listen: { data: toEndpoint(raw.listen.data), admin: toEndpoint(raw.listen.admin), ...(raw.listen.resp ? { resp: toEndpoint(raw.listen.resp) } : {}) },
    pools,
    routes: raw.routes,
    defaultPool: defaultPool!,
    hashing: raw.hashing,
    migration: raw.migration,
    health: raw.health,
    connections: raw.connections,
    limits: raw.limits,
    accessLog: raw.accessLog,
    workers: raw.workers,
    tenants: raw.tenants.map((tenant) => ({
      name: tenant.name,
      tokens: tenant.tokens,
      permissions: tenant.permissions,
      namespace: tenant.namespace ?? null,
      pool: tenant.pool ?? null,
      // A burst defaults to one second's worth.
      rateLimit: tenant.rateLimit ? { rate: tenant.rateLimit.rate, burst: tenant.rateLimit.burst ?? Math.max(1, tenant.rateLimit.rate), mode: tenant.rateLimit.mode } : null,
    })),
    tls: raw.tls ?? null,
    admin: raw.admin,
    shardAccess: { password: raw.shardAccess.password ?? null, tls: raw.shardAccess.tls ?? null },
    region: raw.region ?? null,
  }
}

export function toEndpoint(text: string): Endpoint {
  const colon = text.lastIndexOf(':')
  const port = Number(text.slice(colon + 1))
  if (port > 65535) throw new ConfigError(`${text}: port must be 0-65535`)
  return { host: text.slice(0, colon), port }
}

export function formatEndpoint(endpoint: Endpoint): string {
  return `${endpoint.host}:${endpoint.port}`
}
