// Requests refused for their credentials, on every client port: counted by reason, and logged at
// most once a second per source address (with how many went unlogged), so a scanner cannot flood the log.
import type { Logger } from '../common/logger.ts'
import type { AuthFailure } from './tenants.ts'

const LOG_INTERVAL_MS = 1000

/** Sources remembered at once; past it the one logged longest ago is forgotten (it may log again early). */
const MAX_SOURCES = 10_000

export class AuthFailures {
  private readonly log: Logger
  private readonly count: (reason: AuthFailure) => void
  /** Per source address: when it was last logged and what it did since; oldest logged first. */
  private readonly sources = new Map<string, { loggedAt: number; unlogged: number }>()

  constructor(log: Logger, count: (reason: AuthFailure) => void) {
    this.log = log
    this.count = count
  }

  /** port: where it came in (data, admin or resp). The credential itself is never logged. */
  record(reason: AuthFailure, remoteAddress: string | undefined, port: 'data' | 'admin' | 'resp'): void {
    this.count(reason)
    const source = remoteAddress ?? 'unknown'
    const now = Date.now()
    const seen = this.sources.get(source)
    if (seen && now - seen.loggedAt < LOG_INTERVAL_MS) {
      seen.unlogged++
      return
    }
    this.log.warn({ reason, remoteAddress: source, port, ...(seen?.unlogged ? { unlogged: seen.unlogged } : {}) }, 'refused a request for its credentials')
    // Re-inserted, so the map stays in the order sources were last logged.
    this.sources.delete(source)
    if (this.sources.size >= MAX_SOURCES) this.sources.delete(this.sources.keys().next().value!)
    this.sources.set(source, { loggedAt: now, unlogged: 0 })
  }
}
