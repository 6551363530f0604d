// FailoverRoute: sends an op to the shard's primary, or, when it is knocked out or its
// connection fails, to the next healthy replica in order (unless it may have been applied and
// is not safe to repeat). Never to another shard.
import { NoHealthyDestinationError, OutcomeUnknownError, ShardConnectionError, ShardReplyLostError } from '../errors.ts'
import { runOnDestination, runRawOnDestination } from '../shard-commands.ts'
import type { ShardDestination } from '../shard-destination.ts'
import type { Op, OpResult, RawOp, RawResult, Route, RouteStep } from './route.ts'

/**
 * Whether an op the first destination may have applied can be sent to the next one: reads,
 * versioned writes (the second copy of a version is refused as not newer), a raw op (a peer
 * region's versioned write or merge) and a relative expiry (set again, it moves the deadline by
 * the retry's delay only). An increment is not, nor a plain SET (NX/XX/KEEPTTL): its second try
 * could answer "not stored" for a write the first one made, or overwrite a newer write, as it
 * carries no version.
 */
function repeatable(op: Op | RawOp): boolean {
  switch (op.kind) {
    case 'incr':
      return false
    case 'set':
      return op.condition === undefined && !op.keepTtl
    default:
      return true
  }
}

export class FailoverRoute implements Route {
  readonly shard: string
  readonly destinations: readonly ShardDestination[]

  constructor(shard: string, destinations: readonly ShardDestination[]) {
    this.shard = shard
    this.destinations = destinations
  }

  route(op: Op): Promise<OpResult> {
    return this.tryInOrder(op, runOnDestination)
  }

  /** A peer region's shard command, to the first healthy destination that takes it. */
  routeRaw(op: RawOp): Promise<RawResult> {
    return this.tryInOrder(op, runRawOnDestination)
  }

  private async tryInOrder<O extends Op | RawOp, R>(op: O, run: (destination: ShardDestination, op: O) => Promise<R>): Promise<R> {
    let lastError: Error | null = null
    for (const destination of this.destinations) {
      if (destination.health.knockedOut) continue
      try {
        return await run(destination, op)
      } catch (error) {
        if (!(error instanceof ShardConnectionError)) throw error
        if (error instanceof ShardReplyLostError && !repeatable(op)) throw new OutcomeUnknownError(this.shard, op.kind === 'incr' ? 'increment' : 'conditional SET', error.message)
        lastError = error
      }
    }
    throw lastError ?? new NoHealthyDestinationError(this.shard)
  }

  explain(): RouteStep[] {
    const chosen = this.destinations.find((d) => !d.health.knockedOut)
    const skipped = this.destinations.filter((d) => d.health.knockedOut).map((d) => d.name)
    return [{
      route: 'failover',
      decision: chosen ? `${chosen.name} (${chosen.address})` : 'none',
      why: chosen
        ? skipped.length > 0 ? `knocked out: ${skipped.join(', ')}; next healthy in order` : `${chosen.id.role} is healthy`
        : 'every destination is knocked out',
    }]
  }

  describe(): unknown {
    return { failover: this.destinations.map((d) => `${d.id.role} ${d.address}`) }
  }
}
