// How this router (or rebalance job, or direct-mode client) reaches its shards as an internal peer:
// the TLS to verify them with and the password it presents, both kept current from their files.
import { SecretSet } from '../common/secrets.ts'
import { ClientTls } from '../common/tls-files.ts'
import type { ShardAccessConfig } from './config.ts'

export class ShardAccess {
  /** RESP and admin HTTP to shards over TLS, verified against the configured CA; null: plain TCP. */
  readonly tls: ClientTls | null
  /** The internal password to present (AUTH shardline …, Bearer …), read at each connect; null: none. */
  readonly password: (() => string) | null
  private readonly secrets: SecretSet | null

  /** onProblem hears of a password file that became unreadable (its last password stays in use). */
  constructor(config: ShardAccessConfig, onProblem: (message: string) => void) {
    this.secrets = config.password === null ? null : new SecretSet('shardAccess.password', [config.password], onProblem)
    try {
      // A hash can only verify: refuse it now rather than at the first connect.
      this.secrets?.presented()
      this.tls = config.tls === null ? null : new ClientTls(config.tls)
    } catch (error) {
      this.secrets?.close()
      throw error
    }
    const secrets = this.secrets
    this.password = secrets === null ? null : () => secrets.presented()
  }

  close(): void {
    this.secrets?.close()
    this.tls?.close()
  }
}
