// Why an operation failed on its way to a shard, each with the HTTP status and code the front
// answers with: no healthy destination, queue full, shard timeout, connection lost, shard error.
import { HttpError } from '../common/http-errors.ts'

/** The connection to a destination failed or closed: the failover route may try the next one. */
export class ShardConnectionError extends HttpError {
  constructor(message: string) {
    super(503, 'shard_unavailable', message)
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

/** The shard answered with an error reply (a bug or a limit mismatch between router and shard). */
export class ShardErrorReply extends HttpError {
  constructor(destination: string, message: string) {
    super(502, 'shard_error', `${destination}: ${message}`)
  }
}
