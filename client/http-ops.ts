// Each call as an exchange with a router's HTTP API: its plain request (GET /:key, POST /:key/incr, …), for
// gets, sets and deletes also its op in a POST /-/batch, and how an answer, an error or a lost connection reads.
import { ShardlineError, type CacheValue } from './types.ts'
import { decodeRouterValue, jsonText, type ReadAs, type RouterValue } from './values.ts'

export const BATCH_PATH = '/-/batch'

export interface HttpRequest {
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  headers?: Record<string, string>
  body?: string | Buffer
}

export interface HttpAnswer {
  status: number
  body: Buffer
  /** The Retry-After header of a 429. */
  retryAfter?: string
}

/** Sends one request; rejects only when no answer came (a connection error, an abort). */
export type Requester = (request: HttpRequest, signal: AbortSignal) => Promise<HttpAnswer>

/** One call's request and how its answer reads. */
export interface Exchange<T> {
  request: HttpRequest
  read(answer: HttpAnswer): T
  /** The error for a request that got no answer. */
  lost(cause: unknown): ShardlineError
}

/** A get, set or delete: also an op of a batch. */
export interface KeyOp<T> extends Exchange<T> {
  /** Its op in a batch's `ops`, as JSON text. */
  fragment: string
  /** Its entry in a batch's `results`. */
  readResult(result: BatchResult): T
}

/** One entry of a batch's results: what the op's plain request would answer, errors as {error, code}. */
export type BatchResult = Partial<RouterValue> & { stored?: boolean; deleted?: boolean; error?: string; code?: string }

const JSON_BODY = { 'content-type': 'application/json' }

export function getOp(key: string, as: ReadAs): KeyOp<CacheValue | null> {
  const readResult = (result: BatchResult) => {
    if (result.code === 'not_found') return null
    return decodeRouterValue(checkResult(result) as RouterValue, as)
  }
  return {
    fragment: `{"op":"get","key":${JSON.stringify(key)}}`,
    // The stored bytes themselves when they are what was asked for: no JSON, no base64.
    request: { method: 'GET', path: keyPath(key), headers: { accept: as === 'buffer' ? 'application/octet-stream' : 'application/json' } },
    read(answer) {
      if (answer.status === 404 && bodyOf(answer).code === 'not_found') return null
      if (answer.status !== 200) throw routerError(answer)
      return as === 'buffer' ? answer.body : readResult(bodyOf(answer))
    },
    readResult,
    lost: connectionError,
  }
}

/**
 * A set. A Buffer goes as raw bytes when alone and as base64 in a batch (the batch's `encoding` field);
 * anything else as its JSON text, which the router stores by the value rule.
 */
export function setOp(key: string, value: CacheValue, ttlMs: number | undefined): KeyOp<boolean> {
  const ttl = ttlMs === undefined ? undefined : ttlMs / 1000
  const isBytes = Buffer.isBuffer(value)
  const valueField = isBytes ? `"value":"${value.toString('base64')}","encoding":"base64"` : `"value":${jsonText(value)}`
  const ttlField = ttl === undefined ? '' : `,"ttl":${ttl}`
  const readResult = (result: BatchResult) => checkResult(result).stored === true
  return {
    fragment: `{"op":"set","key":${JSON.stringify(key)},${valueField}${ttlField}}`,
    request: isBytes
      ? { method: 'POST', path: `${keyPath(key)}${ttl === undefined ? '' : `?ttl=${ttl}`}`, headers: { 'content-type': 'application/octet-stream' }, body: value }
      : { method: 'POST', path: keyPath(key), headers: JSON_BODY, body: `{${valueField}${ttlField}}` },
    read: (answer) => readResult(okBody(answer)),
    readResult,
    lost: connectionError,
  }
}

export function deleteOp(key: string): KeyOp<boolean> {
  const readResult = (result: BatchResult) => checkResult(result).deleted === true
  return {
    fragment: `{"op":"delete","key":${JSON.stringify(key)}}`,
    request: { method: 'DELETE', path: keyPath(key) },
    read: (answer) => readResult(okBody(answer)),
    readResult,
    lost: connectionError,
  }
}

/** An increment: its new total, or null for a hot counter's batched increment. Its lost reply leaves its outcome unknown. */
export function incrExchange(key: string, by: bigint): Exchange<bigint | null> {
  return {
    request: { method: 'POST', path: `${keyPath(key)}/incr`, headers: JSON_BODY, body: `{"by":${by}}` },
    read: (answer) => (answer.status === 200 && bodyOf(answer).acknowledged === true ? null : readTotal(answer)),
    lost(cause) {
      // Refused before anything was sent: nothing was applied. Otherwise the router may have applied it.
      if (NOT_SENT_CODES.has((cause as { code?: string }).code ?? '')) return connectionError(cause)
      return new ShardlineError('outcome_unknown', `the connection to the router failed after the increment was sent; it may or may not have been applied, and it is never sent again (${(cause as Error).message})`, { cause })
    },
  }
}

export function counterExchange(key: string): Exchange<bigint> {
  return { request: { method: 'GET', path: `${keyPath(key)}/counter` }, read: readTotal, lost: connectionError }
}

/** Sends one exchange's request and reads its answer. */
export async function exchange<T>(send: Requester, call: Exchange<T>, signal: AbortSignal): Promise<T> {
  let answer: HttpAnswer
  try {
    answer = await send(call.request, signal)
  } catch (error) {
    throw call.lost(error)
  }
  return call.read(answer)
}

export function batchRequest(ops: readonly KeyOp<unknown>[]): HttpRequest {
  return { method: 'POST', path: BATCH_PATH, headers: JSON_BODY, body: `{"ops":[${ops.map((op) => op.fragment).join(',')}]}` }
}

/** A batch's results, one per op; the router's error when it refused the batch whole. */
export function batchResults(answer: HttpAnswer, count: number): BatchResult[] {
  const { results } = okBody(answer) as { results?: BatchResult[] }
  if (!Array.isArray(results) || results.length !== count) throw unreadable(answer, `a batch of ${count} ops answered with ${Array.isArray(results) ? results.length : 'no'} results`)
  return results
}

/** True when an idempotent call may be tried again: the router or a shard was unavailable or timed out, or no answer came. */
export function isRetryable(error: unknown): boolean {
  return error instanceof ShardlineError && (error.status === 503 || error.status === 504 || error.code === 'connection_error')
}

export function connectionError(cause: unknown): ShardlineError {
  if (cause instanceof ShardlineError) return cause
  const code = (cause as { code?: string }).code
  return new ShardlineError('connection_error', `the router could not be reached: ${(cause as Error).message}${code ? ` (${code})` : ''}`, { cause })
}

/** A router's refusal: its {error, code} with the status it answered (and a 429's Retry-After). */
export function routerError(answer: HttpAnswer): ShardlineError {
  const body = parse(answer)
  if (typeof body?.code !== 'string') throw unreadable(answer, `the router answered ${answer.status}`)
  const retryAfterSeconds = answer.status === 429 && answer.retryAfter !== undefined && /^\d+$/.test(answer.retryAfter) ? Number(answer.retryAfter) : undefined
  return new ShardlineError(body.code, typeof body.error === 'string' ? body.error : body.code, { status: answer.status, retryAfterMs: retryAfterSeconds === undefined ? undefined : retryAfterSeconds * 1000 })
}

/**
 * A refusal of the caller rather than of an op (no or a bad token: 401; the tenant's rate limit:
 * 429): every op of a refused batch gets it, where sending them singly would only be refused again.
 */
export function refusesCaller(answer: HttpAnswer): boolean {
  return answer.status === 401 || answer.status === 429
}

/** Connection errors raised before a request was written: nothing reached the router. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT'])

/**
 * The statuses of the codes a route fails one op of a batch with (router/errors.ts), which a batch's
 * result carries without a status; so an op's error has the status its plain request would have.
 */
const OP_ERROR_STATUS: Record<string, number> = { shard_unavailable: 503, queue_full: 503, no_healthy_destination: 503, shard_timeout: 504, shard_error: 502 }

function checkResult(result: BatchResult): BatchResult {
  if (typeof result.code === 'string') throw new ShardlineError(result.code, result.error ?? result.code, { status: OP_ERROR_STATUS[result.code] })
  return result
}

function readTotal(answer: HttpAnswer): bigint {
  if (answer.status !== 200) throw routerError(answer)
  // Totals past 2^53 are written with every digit, which JSON.parse would round.
  const total = /^\{"value":(-?\d+)\}$/.exec(answer.body.toString('latin1'))
  if (!total) throw unreadable(answer, 'a counter total was expected')
  return BigInt(total[1])
}

function keyPath(key: string): string {
  return `/${encodeURIComponent(key)}`
}

function okBody(answer: HttpAnswer): BatchResult {
  if (answer.status !== 200) throw routerError(answer)
  return bodyOf(answer)
}

function bodyOf(answer: HttpAnswer): BatchResult & { acknowledged?: boolean } {
  const body = parse(answer)
  if (body === null || typeof body !== 'object') throw unreadable(answer, 'a JSON object was expected')
  return body
}

function parse(answer: HttpAnswer): (BatchResult & { acknowledged?: boolean }) | null {
  try {
    return JSON.parse(answer.body.toString('utf8'))
  } catch {
    return null
  }
}

/** An answer that is not the router's (a proxy's error page, a truncated body). */
function unreadable(answer: HttpAnswer, why: string): ShardlineError {
  return new ShardlineError('connection_error', `${why}; the answer (${answer.status}) is not the router's: ${answer.body.toString('utf8', 0, 200)}`, { status: answer.status })
}
