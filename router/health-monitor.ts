// Health of every destination, after mcrouter's TKO tracker: PING heartbeats, knock-out after
// consecutive failures or at once on a refused or lost connection, probes with backoff and
// jitter to re-admit, and a per-pool cap so a router cut off from the network keeps serving.
// An unreadable reply is logged, not counted: it fails one op, not the destination.
import type { Logger } from '../common/logger.ts'
import { ThrottledWarning } from '../common/throttled-warning.ts'
import type { RouterConfig } from './config.ts'
import type { ShardDestination } from './shard-destination.ts'

export class HealthMonitor {
  private readonly settings: RouterConfig['health']
  private readonly log: Logger
  private readonly pools = new Map<string, ShardDestination[]>()
  private readonly probeTimers = new Map<ShardDestination, NodeJS.Timeout>()
  private readonly heartbeat: NodeJS.Timeout
  private readonly heartbeatsInFlight = new Set<ShardDestination>()

  private readonly onKnockout: (destination: ShardDestination) => void
  // Said once per burst: a shard that keeps refusing connections (a wrong password, an untrusted
  // certificate) fails every reconnect of every connection.
  private readonly atCap: ThrottledWarning

  constructor(settings: RouterConfig['health'], destinations: readonly ShardDestination[], log: Logger, onKnockout: (destination: ShardDestination) => void) {
    this.settings = settings
    this.log = log
    this.onKnockout = onKnockout
    this.atCap = new ThrottledWarning(log, 'not knocking out: the pool is at its knock-out cap')
    for (const destination of destinations) {
      const pool = this.pools.get(destination.id.pool) ?? []
      pool.push(destination)
      this.pools.set(destination.id.pool, pool)
      destination.onHardFailure = (error) => this.fail(destination, error, true)
      destination.onProtocolError = (error) => this.protocolError(destination, error)
    }
    this.heartbeat = setInterval(() => this.beat(), settings.heartbeatMs)
    this.heartbeat.unref()
  }

  stop(): void {
    clearInterval(this.heartbeat)
    for (const timer of this.probeTimers.values()) clearTimeout(timer)
    this.probeTimers.clear()
    for (const destinations of this.pools.values()) {
      for (const destination of destinations) {
        destination.onHardFailure = () => {}
        destination.onProtocolError = () => {}
      }
    }
  }

  private beat(): void {
    for (const destinations of this.pools.values()) {
      for (const destination of destinations) {
        if (destination.health.knockedOut || this.heartbeatsInFlight.has(destination)) continue
        this.heartbeatsInFlight.add(destination)
        this.ping(destination).then(
          () => this.succeed(destination),
          (error: Error) => this.fail(destination, error, false),
        ).finally(() => this.heartbeatsInFlight.delete(destination))
      }
    }
  }

  // A PING that must answer within one heartbeat interval.
  private async ping(destination: ShardDestination): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no PONG within ${this.settings.heartbeatMs} ms`)), this.settings.heartbeatMs)
    })
    try {
      const reply = await Promise.race([destination.send(['PING']), timeout])
      if (reply !== 'PONG') throw new Error(`unexpected heartbeat reply ${String(reply)}`)
    } finally {
      clearTimeout(timer)
    }
  }

  private succeed(destination: ShardDestination): void {
    destination.health.consecutiveFailures = 0
  }

  private protocolError(destination: ShardDestination, error: Error): void {
    destination.health.lastError = error.message
    this.log.warn({ destination: destination.name, address: destination.address, reason: error.message }, 'unreadable reply from a destination: its connection was reset, the op that reply answered failed')
  }

  private fail(destination: ShardDestination, error: Error, hard: boolean): void {
    const health = destination.health
    health.lastError = error.message
    if (health.knockedOut) return
    health.consecutiveFailures++
    if (!hard && health.consecutiveFailures < this.settings.failuresBeforeKnockout) return
    const pool = this.pools.get(destination.id.pool) ?? []
    const cap = Math.max(1, Math.floor(pool.length * this.settings.maxKnockedOutFraction))
    const knockedOut = pool.filter((d) => d.health.knockedOut).length
    if (knockedOut >= cap) {
      if (health.consecutiveFailures === this.settings.failuresBeforeKnockout || hard) {
        this.atCap.warn({ destination: destination.name, knockedOut, cap, reason: error.message })
      }
      return
    }
    health.knockedOut = true
    health.knockedOutAt = Date.now()
    health.knockouts++
    this.onKnockout(destination)
    this.log.warn({ destination: destination.name, address: destination.address, reason: error.message }, 'destination knocked out')
    this.scheduleProbe(destination, this.settings.probeInitialMs)
  }

  private scheduleProbe(destination: ShardDestination, backoffMs: number): void {
    const delay = backoffMs * (0.5 + Math.random())
    const timer = setTimeout(() => {
      this.probeTimers.delete(destination)
      this.ping(destination).then(
        () => {
          const downForMs = Date.now() - (destination.health.knockedOutAt ?? Date.now())
          destination.health.knockedOut = false
          destination.health.knockedOutAt = null
          destination.health.consecutiveFailures = 0
          this.log.info({ destination: destination.name, downForMs }, 'destination re-admitted')
        },
        (error: Error) => {
          destination.health.lastError = error.message
          this.scheduleProbe(destination, Math.min(backoffMs * 2, this.settings.probeMaxMs))
        },
      )
    }, delay)
    timer.unref()
    this.probeTimers.set(destination, timer)
  }
}
