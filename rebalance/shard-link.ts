// One shard primary as the rebalance job talks to it: the router's own pipelined connections
// (ShardDestination), with commands retried through an outage, backing off, up to the shard timeout.
import { RespErrorReply, type RespReply } from '../common/resp-reply-parser.ts'
import type { RouterConfig, ShardConfig } from '../router/config.ts'
import { QueueFullError, ShardConnectionError, ShardReplyLostError, ShardTimeoutError } from '../router/errors.ts'
import type { ShardAccess } from '../router/shard-access.ts'
import { ShardDestination } from '../router/shard-destination.ts'
import type { CommandArg } from '../router/shard-connection.ts'
import { systemClock, type Clock } from './rate-limiter.ts'

/** The shard did not answer for longer than the shard timeout: the job counts its keys failed. */
export class ShardUnreachableError extends Error {}

const BACKOFF_INITIAL_MS = 50
const BACKOFF_MAX_MS = 2000

export class ShardLink {
  readonly name: string
  private readonly destination: ShardDestination
  private readonly timeoutMs: number
  private readonly clock: Clock
  /** When the current run of failures began; null while the shard answers. */
  private failingSince: number | null = null
  /** Set once the shard timeout passed: later commands fail at once instead of waiting again. */
  private unreachable: string | null = null

  constructor(pool: string, shard: ShardConfig, connections: RouterConfig['connections'], access: ShardAccess, timeoutMs: number, clock: Clock = systemClock) {
    this.name = `${pool}/${shard.name}`
    this.timeoutMs = timeoutMs
    this.clock = clock
    const endpoint = shard.primary.address
    this.destination = new ShardDestination({ pool, shard: shard.name, role: 'primary', index: 0, endpoint }, connections, access)
  }

  /**
   * Sends the commands together and returns their replies in order (error replies included, but
   * -LOADING, which is retried). A command that did not reach the shard is sent again; one that
   * may have been applied (reply lost, timed out) only when idempotent, else it fails with its error.
   */
  async sendAll(commands: readonly (readonly CommandArg[])[], idempotent: boolean): Promise<Array<RespReply | Error>> {
    const replies = new Array<RespReply | Error>(commands.length)
    let pending = commands.map((_, i) => i)
    let backoff = BACKOFF_INITIAL_MS
    while (true) {
      if (this.unreachable !== null) throw new ShardUnreachableError(this.unreachable)
      const settled = await Promise.allSettled(pending.map((i) => this.destination.send(commands[i])))
      const retry: number[] = []
      let lastProblem = ''
      settled.forEach((outcome, n) => {
        const i = pending[n]
        const problem = outcome.status === 'rejected' ? retryable(outcome.reason as Error, idempotent) : loading(outcome.value)
        if (problem === null) replies[i] = outcome.status === 'fulfilled' ? outcome.value : (outcome.reason as Error)
        else {
          retry.push(i)
          lastProblem = problem
        }
      })
      if (retry.length === 0) {
        this.failingSince = null
        return replies
      }
      const now = this.clock.now()
      this.failingSince ??= now
      if (now - this.failingSince >= this.timeoutMs) {
        this.unreachable = `${this.name} did not answer for ${Math.round(this.timeoutMs / 1000)} s (${lastProblem})`
        throw new ShardUnreachableError(this.unreachable)
      }
      await this.clock.sleep(backoff)
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS)
      pending = retry
    }
  }

  close(): void {
    this.destination.close()
  }
}

/** Why a failed send may be tried again, or null when it may not (it may have been applied). */
function retryable(error: Error, idempotent: boolean): string | null {
  if (error instanceof ShardReplyLostError || error instanceof ShardTimeoutError) return idempotent ? error.message : null
  if (error instanceof ShardConnectionError || error instanceof QueueFullError) return error.message
  throw error
}

/** A restarted primary still loading its replica's data answers -LOADING: wait for it. */
function loading(reply: RespReply): string | null {
  return reply instanceof RespErrorReply && reply.message.startsWith('LOADING') ? reply.message : null
}
