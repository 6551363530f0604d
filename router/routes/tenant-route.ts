// TenantRoute: the root of the tree and the one place a tenant's namespace is applied. An op with a
// tenant is checked against its permissions, goes to its pinned pool (or the pool the prefix routes
// pick for its own key) with its key namespaced; everything below sees only namespaced keys.
// Also the fronts' admission of a tenant's request: its permissions, then its rate limit, counted.
import { HttpError } from '../../common/http-errors.ts'
import type { Permission } from '../config.ts'
import type { RouterMetrics } from '../metrics.ts'
import type { Tenant } from '../tenants.ts'
import type { PrefixRoute } from './prefix-route.ts'
import type { Op, OpBody, OpResult, Route, RouteStep } from './route.ts'

const PERMISSION_OF: Record<OpBody['kind'], Permission> = {
  get: 'read',
  counter: 'read',
  ttl: 'read',
  set: 'write',
  delete: 'write',
  incr: 'write',
  expire: 'write',
}

/** The refusal of an op or request needing a permission its tenant lacks. */
export function forbidden(tenant: Tenant, permission: Permission): HttpError {
  return new HttpError(403, 'forbidden', `tenant ${tenant.name} has no ${permission} permission`)
}

/**
 * Lets in a tenant's request that needs `needs` and costs `cost` ops (a batch: one per op): 0. Or
 * why not: the permission it lacks, or the ms until its rate limit lets it in. Let in is counted
 * by tenant, past the limit by tenant and mode (in shadow mode it is counted and let in).
 */
export function admit(tenant: Tenant, needs: Permission, cost: number, metrics: Pick<RouterMetrics, 'tenantRequests' | 'rateLimited'>, alsoNeeds?: Permission): Permission | number {
  if (!tenant.permissions.has(needs)) return needs
  if (alsoNeeds !== undefined && !tenant.permissions.has(alsoNeeds)) return alsoNeeds
  const waitMs = tenant.limiter === null ? 0 : tenant.limiter.take(cost)
  if (waitMs > 0) {
    metrics.rateLimited.inc({ tenant: tenant.name, mode: tenant.limiter!.mode })
    if (tenant.limiter!.mode === 'enforce') return waitMs
  }
  requestCounter(tenant, metrics).inc()
  return 0
}

// prom-client hashes a labels object on every inc(); each tenant's child counter is looked up once.
const requestCounters = new WeakMap<Tenant, { inc(): void }>()

function requestCounter(tenant: Tenant, metrics: Pick<RouterMetrics, 'tenantRequests'>): { inc(): void } {
  let counter = requestCounters.get(tenant)
  if (counter === undefined) requestCounters.set(tenant, (counter = metrics.tenantRequests.labels(tenant.name)))
  return counter
}

/** What a refusal for the rate limit says (the HTTP and RESP fronts word it alike). */
export function rateLimitedMessage(tenant: Tenant, waitMs: number): string {
  return `tenant ${tenant.name} is over its rate limit of ${tenant.limiter!.rate} ops/s (burst ${tenant.limiter!.burst}); retry in ${waitMs} ms`
}

export class TenantRoute implements Route {
  private readonly prefix: PrefixRoute
  private readonly pools: ReadonlyMap<string, Route>
  private readonly tenants: readonly Tenant[]
  private readonly maxKeyBytes: number

  /** maxKeyBytes: limits.maxKeyBytes, which a key's namespace counts toward (the shards' limit is the same plus derived keys' tags). */
  constructor(prefix: PrefixRoute, pools: ReadonlyMap<string, Route>, tenants: readonly Tenant[], maxKeyBytes: number) {
    this.prefix = prefix
    this.pools = pools
    this.tenants = tenants
    this.maxKeyBytes = maxKeyBytes
  }

  route(op: Op): Promise<OpResult> {
    const tenant = op.tenant
    if (tenant === undefined) return this.prefix.route(op)
    // The fronts refuse first (and say so in their own words); this holds whatever front sent the op.
    const permission = PERMISSION_OF[op.kind]
    if (!tenant.permissions.has(permission)) throw forbidden(tenant, permission)
    // Keys are latin1 strings of their bytes: length is the byte count.
    if (tenant.keyPrefix.length + op.key.length > this.maxKeyBytes) {
      throw new HttpError(400, 'key_too_long', `key is ${op.key.length} bytes and its namespace "${tenant.keyPrefix}" ${tenant.keyPrefix.length} more; the limit is ${this.maxKeyBytes}`)
    }
    return this.poolOf(tenant, op.key).route({ ...op, key: tenant.keyPrefix + op.key })
  }

  explain(key: string, tenant?: Tenant): RouteStep[] {
    if (tenant === undefined) return this.prefix.explain(key)
    const wireKey = tenant.keyPrefix + key
    const namespace = tenant.keyPrefix === '' ? `tenant ${tenant.name} has no namespace: the key is sent as it is` : `tenant ${tenant.name}'s keys are sent under "${tenant.keyPrefix}"`
    const step = { route: 'tenant', decision: tenant.name, why: namespace }
    if (tenant.pool !== null) {
      return [step, { route: 'prefix', decision: tenant.pool, why: `tenant ${tenant.name} is pinned to pool ${tenant.pool}` }, ...this.pinned(tenant).explain(wireKey)]
    }
    const chosen = this.prefix.select(key)
    return [step, this.prefix.step(chosen), ...chosen.route.explain(wireKey)]
  }

  describe(): unknown {
    const routes = this.prefix.describe()
    if (this.tenants.length === 0) return routes
    return { tenants: this.tenants.map(({ name, keyPrefix, pool }) => ({ name, keyPrefix, pool })), routes }
  }

  // The prefix routes match the key the tenant sent, so a tenant's keys go where anyone's would.
  private poolOf(tenant: Tenant, key: string): Route {
    return tenant.pool === null ? this.prefix.select(key).route : this.pinned(tenant)
  }

  private pinned(tenant: Tenant): Route {
    const pool = this.pools.get(tenant.pool!)
    // Only an op authenticated on the tree before a reload that removed the pool can get here.
    if (pool === undefined) throw new HttpError(503, 'unavailable', `pool ${tenant.pool} of tenant ${tenant.name} is no longer configured`)
    return pool
  }
}
