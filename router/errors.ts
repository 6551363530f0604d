// Why an operation failed on its way to a shard, each with the HTTP status and code the front
// answers with: no healthy destination, queue full, timeout, connection lost, outcome unknown, shard error.
import { HttpError } from '../common/http-errors.ts'

/**
 * The command never reached the shard (refused, or the connection failed or closed before it was
 * written): nothing was applied, so the failover route may try the next destination.
 */
export class ShardConnectionError extends HttpError {
  constructor(message: string) {
    super(503, 'shard_unavailable', message)
  }
}

/**
 * The command was written, then the connection failed before its reply came: the shard may have
 * applied it. Only an op that is safe to repeat may be tried on another destination.
 */
export class ShardReplyLostError extends ShardConnectionError {}

/**
 * An op that is not safe to repeat (an increment, a conditional SET) whose reply was lost:
 * answered as such rather than applied a second time elsewhere.
 */
export class OutcomeUnknownError extends HttpError {
  constructor(shard: string, op: string, cause: string) {
    super(503, 'outcome_unknown', `shard ${shard}: the ${op} may or may not have been applied and was not retried (${cause})`)
  }
}

export class ShardTimeoutError extends HttpError {
  constructor(destination: string, timeoutMs: number) {
    super(504, 'shard_timeout', `${destination} did not answer within ${timeoutMs} ms`)
  }
}

export class QueueFullError extends HttpError {
  constructor(destination: string, limit: number) {
    super(503, 'queue_full', `${destination} has ${limit} operations queued already`)
  }
}

export class NoHealthyDestinationError extends HttpError {
  constructor(shard: string) {
    super(503, 'no_healthy_destination', `no healthy destination for shard ${shard}`)
  }
}

/**
 * The shard answered with an error reply or one the router cannot read (a bug or a limit mismatch
 * between router and shard).
 */
export class ShardErrorReply extends HttpError {
  constructor(destination: string, message: string) {
    super(502, 'shard_error', `${destination}: ${message}`)
  }
}

/** The value under a counter's key is not a signed 64-bit integer. */
export class NotACounterError extends HttpError {
  constructor(detail: string) {
    super(409, 'not_a_counter', `the value under this key is not a counter (${detail})`)
  }
}

/** The increment would take the counter past the signed 64-bit range; the counter is unchanged. */
export class CounterOverflowError extends HttpError {
  constructor() {
    super(409, 'counter_overflow', 'the increment would take the counter outside the signed 64-bit range; the counter is unchanged')
  }
}
