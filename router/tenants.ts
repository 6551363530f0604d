// Who is asking: the tenants of the router config, each with its tokens (several, for rotation;
// files re-read when they change), permissions, key namespace, pinned pool and rate limit, and
// the check of a bearer token against them (SHA-256, then timingSafeEqual).
import type { Logger } from '../common/logger.ts'
import { bearerToken, SecretSet, sha256 } from '../common/secrets.ts'
import type { Permission, TenantConfig } from './config.ts'
import { RateLimiter } from './rate-limiter.ts'

export interface Tenant {
  readonly name: string
  /** Put before every key of the tenant on the wire ("<namespace>:"); '' for an admin tenant without a namespace. */
  readonly keyPrefix: string
  readonly permissions: ReadonlySet<Permission>
  /** The pool every key of the tenant goes to; null when the prefix routes decide. */
  readonly pool: string | null
  /** null: no rate limit. */
  readonly limiter: RateLimiter | null
}

/** Why a request was not let in: no token, a token nobody holds, or a permission its tenant lacks. */
export type AuthFailure = 'missing_token' | 'bad_token' | 'forbidden'

/** The separator between a namespace and a key; no namespace contains it (the config's pattern). */
export const NAMESPACE_SEPARATOR = ':'

export class TenantAccess {
  /** No tenants configured: every port is open, as the quick start is. */
  readonly open: boolean
  readonly tenants: readonly Tenant[]
  private readonly secrets: Array<{ tenant: Tenant; tokens: SecretSet }>
  /** Each connection's last accepted Authorization header (a reload makes a new TenantAccess, and so forgets them). */
  private readonly connections = new WeakMap<object, { header: string; generation: number; tenant: Tenant }>()

  constructor(configs: readonly TenantConfig[], log: Logger) {
    this.open = configs.length === 0
    this.secrets = []
    try {
      for (const config of configs) {
        const tenant: Tenant = {
          name: config.name,
          keyPrefix: config.namespace === null ? '' : `${config.namespace}${NAMESPACE_SEPARATOR}`,
          permissions: new Set(config.permissions),
          pool: config.pool,
          limiter: config.rateLimit ? new RateLimiter(config.rateLimit) : null,
        }
        const tokens = new SecretSet(`tenants.${config.name}.tokens`, config.tokens, (problem) => log.error(problem))
        this.secrets.push({ tenant, tokens })
      }
    } catch (error) {
      this.close()
      throw error
    }
    this.tenants = this.secrets.map(({ tenant }) => tenant)
  }

  /** Changes whenever a token file changes what any tenant holds. */
  get generation(): number {
    let sum = 0
    for (const { tokens } of this.secrets) sum += tokens.generation
    return sum
  }

  /**
   * authenticate(bearerToken(header)) for a request on connection, remembering the answer for the
   * connection's next request with the same header until a token file changes: a keep-alive client
   * pays the hash and the comparisons once per connection, not once per request. (The header is
   * compared with the one this connection sent before, so its timing tells a client only about
   * its own earlier header.)
   */
  authenticateHeader(connection: object, header: string | undefined): Tenant | AuthFailure {
    const generation = this.generation
    const known = this.connections.get(connection)
    if (known !== undefined && known.header === header && known.generation === generation) return known.tenant
    const found = this.authenticate(bearerToken(header))
    if (typeof found !== 'string') this.connections.set(connection, { header: header!, generation, tenant: found })
    return found
  }

  /** The tenant holding token; every tenant's tokens are compared, so the time taken does not say which matched. */
  authenticate(token: string | undefined): Tenant | AuthFailure {
    if (token === undefined || token === '') return 'missing_token'
    const digest = sha256(token)
    let found: Tenant | null = null
    for (const { tenant, tokens } of this.secrets) if (tokens.matchesDigest(digest) && found === null) found = tenant
    return found ?? 'bad_token'
  }

  byName(name: string): Tenant | undefined {
    return this.tenants.find((tenant) => tenant.name === name)
  }

  close(): void {
    for (const { tokens } of this.secrets) tokens.close()
  }
}
