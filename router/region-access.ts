// Who may send a router peer regions' writes (SL.REGION.*): the region's passwords, presented by a
// peer region's shards as AUTH region <password>; open only when the router has neither those nor tenants.
import type { Logger } from '../common/logger.ts'
import { REGION_USER, type RouterRegionConfig } from '../common/region.ts'
import { SecretSet } from '../common/secrets.ts'
import type { RouterConfig } from './config.ts'

export class RegionAccess {
  /** This router's region; null: it takes no region writes at all. */
  readonly region: RouterRegionConfig | null
  /** Any connection may run SL.REGION.* (no region passwords, no tenants: the quick-start style). */
  readonly open: boolean
  /** null: no passwords (then AUTH region … is a tenant's AUTH, and region commands are open or refused). */
  private readonly passwords: SecretSet | null

  constructor(config: Pick<RouterConfig, 'region' | 'tenants'>, log: Logger) {
    this.region = config.region
    const sources = config.region?.passwords ?? []
    this.passwords = sources.length === 0 ? null : new SecretSet('region.passwords', sources, (problem) => log.error(problem))
    this.open = this.passwords === null && config.tenants.length === 0
  }

  /** Peer regions authenticate with a password (AUTH region <password>). */
  get takesPasswords(): boolean {
    return this.passwords !== null
  }

  /** AUTH <user> … names the region rather than a tenant. */
  takesAuth(user: string | null): boolean {
    return this.passwords !== null && user === REGION_USER
  }

  /** password is one of region.passwords (compared as digests, in constant time per password). */
  authenticate(password: string): boolean {
    return this.passwords !== null && this.passwords.matches(password)
  }

  close(): void {
    this.passwords?.close()
  }
}
