// A RESP front's reply before it is written (bulk, integer, status, error, array), how it is
// written, how many value bytes it holds, and how a route tree error is answered in Redis's words.
import { HttpError } from '../common/http-errors.ts'
import { NOT_INTEGER, OVERFLOW } from '../common/resp-arguments.ts'
import type { RespWriter } from '../common/resp-writer.ts'
import { CounterOverflowError, NotACounterError } from './errors.ts'

/** A status reply (+OK). */
export class Status {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

/** An error reply; message carries its prefix (ERR, TRYAGAIN, NOPROTO, …) and outcome its metrics label. */
export class ErrorReply {
  readonly message: string
  readonly outcome: string
  constructor(message: string, outcome = 'err') {
    this.message = message
    this.outcome = outcome
  }
}

/** A Buffer is a bulk string, a string a bulk string of UTF-8 text, null the null bulk string. */
export type Reply = Buffer | string | null | number | bigint | Status | ErrorReply | Reply[]

export const OK = new Status('OK')


export function writeReply(writer: RespWriter, reply: Reply): void {
  if (Buffer.isBuffer(reply)) writer.bulk(reply)
  else if (reply === null) writer.nullBulk()
  else if (typeof reply === 'number' || typeof reply === 'bigint') writer.integer(reply)
  else if (typeof reply === 'string') writer.bulkText(reply)
  else if (reply instanceof Status) writer.simple(reply.text)
  else if (reply instanceof ErrorReply) writer.error(reply.message)
  else {
    writer.arrayHeader(reply.length)
    for (const item of reply) writeReply(writer, item)
  }
}

/** The value bytes a reply holds: what it is charged against the front's response budget. */
export function valueBytes(reply: Reply): number {
  if (Buffer.isBuffer(reply)) return reply.length
  if (Array.isArray(reply)) return reply.reduce<number>((sum, item) => sum + valueBytes(item), 0)
  return 0
}

/**
 * Errors the route tree raises for which nothing was applied and a later try may succeed: sent as
 * -TRYAGAIN, which Redis clients surface as an error and cluster clients retry. Every other route
 * error (a timeout, an outcome unknown, a shard's refusal) is -ERR, as it may have been applied.
 */
const TRY_AGAIN = new Set(['shard_unavailable', 'no_healthy_destination', 'queue_full', 'overloaded'])

/** A route tree error as a reply: `-ERR <code>: <message>` or `-TRYAGAIN <code>: <message>`; Redis's own words for counters. */
export function routeErrorReply(error: unknown): ErrorReply {
  if (error instanceof NotACounterError) return new ErrorReply(NOT_INTEGER, error.code)
  if (error instanceof CounterOverflowError) return new ErrorReply(OVERFLOW, error.code)
  if (error instanceof HttpError) return new ErrorReply(`${TRY_AGAIN.has(error.code) ? 'TRYAGAIN' : 'ERR'} ${error.code}: ${error.message}`, error.code)
  throw error
}
