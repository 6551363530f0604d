// A shard's credentials and what a connection may run with them: the ordinary and internal
// password sets (files re-read on change), the commands answered before AUTH, the internal commands
// only peers may run, and the count and throttled log of every refusal (never the secret itself).
import { bearerToken, INTERNAL_USER, SecretSet, sha256 } from '../common/secrets.ts'
import type { Logger } from '../common/logger.ts'
import { ThrottledWarnings } from '../common/throttled-warning.ts'
import { COMMAND_SPECS, type CommandSpec } from './commands.ts'
import type { ShardAuthConfig } from './config.ts'

/** What a connection may run: the greeting commands only, the data commands, or every command. */
export type Access = 'none' | 'data' | 'internal'

export const AUTH_FAILURE_REASONS = ['noauth', 'wrongpass', 'noperm'] as const
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number]

export const NOAUTH = 'NOAUTH Authentication required.'
export const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.'

/** Answered before AUTH: the greeting commands, and PING because liveness probes send it without credentials. */
const BEFORE_AUTH = new Set(['auth', 'hello', 'ping', 'quit'])

/** Peers' commands: they stream, rewrite or wipe the keyspace (and FLUSHALL replicates), or pin versions. */
const isInternal = (name: string) => name.startsWith('sl.') || name === 'flushall' || name === 'flushdb'

// By command-table index, so a check costs an array read.
const allowedBeforeAuth = COMMAND_SPECS.map((spec) => BEFORE_AUTH.has(spec.name))
const internalOnly = COMMAND_SPECS.map((spec) => isInternal(spec.name))

const FAILURE_MESSAGES: Record<AuthFailureReason, string> = {
  noauth: 'refused a request that came without credentials',
  wrongpass: 'refused a password (or admin token) that matches none of auth.passwords / auth.internalPasswords',
  noperm: 'refused an internal command to a client authenticated with an ordinary password',
}

export class ShardAuth {
  private readonly passwords: SecretSet | null
  private readonly internal: SecretSet
  private readonly failures: Record<AuthFailureReason, number>
  private readonly warnings: ThrottledWarnings

  /** failures: the counts the metrics read, kept here. */
  constructor(config: ShardAuthConfig, log: Logger, failures: Record<AuthFailureReason, number>) {
    const onProblem = (message: string) => log.warn(message)
    this.internal = new SecretSet('auth.internalPasswords', config.internalPasswords, onProblem)
    try {
      this.passwords = config.passwords.length > 0 ? new SecretSet('auth.passwords', config.passwords, onProblem) : null
    } catch (error) {
      this.internal.close()
      throw error
    }
    this.failures = failures
    this.warnings = new ThrottledWarnings(log)
  }

  /**
   * What AUTH [user] password grants, or null. Without a user the internal set is tried first, as
   * Redis tries the default user: AUTH default takes only ordinary passwords, AUTH shardline only internal ones.
   */
  check(user: string | null, password: string): 'data' | 'internal' | null {
    const digest = sha256(password)
    if ((user === null || user === INTERNAL_USER) && this.internal.matchesDigest(digest)) return 'internal'
    if ((user === null || user === 'default') && this.passwords?.matchesDigest(digest)) return 'data'
    return null
  }

  /** Why a connection with this access may not run spec (undefined: an unknown command), or null when it may. */
  refusal(access: Access, spec: CommandSpec | undefined): AuthFailureReason | null {
    if (access === 'internal') return null
    if (access === 'none') return spec !== undefined && allowedBeforeAuth[spec.index] ? null : 'noauth'
    return spec !== undefined && internalOnly[spec.index] ? 'noperm' : null
  }

  /** Whether an Authorization header carries one of the internal passwords as a bearer token, and if not, why. */
  bearerAllowed(header: string | undefined): 'ok' | 'noauth' | 'wrongpass' {
    const token = bearerToken(header)
    if (token === undefined || token === '') return 'noauth'
    return this.internal.matches(token) ? 'ok' : 'wrongpass'
  }

  /** The internal password this shard's replication links present to their peers. */
  presented(): string {
    return this.internal.presented()
  }

  /** Counts a refusal and logs it at most once per burst; details name the source, never a secret. */
  refused(reason: AuthFailureReason, details: Record<string, unknown>): void {
    this.failures[reason]++
    this.warnings.warn(FAILURE_MESSAGES[reason], details)
  }

  close(): void {
    this.internal.close()
    this.passwords?.close()
  }
}

/** Redis's NOPERM reply for a command an ordinary client may not run. */
export function noPermission(name: string): string {
  return `NOPERM this user has no permissions to run the '${name}' command`
}
