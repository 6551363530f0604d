// The HTTP key API's rules, shared by the shard's /keys and the router's front: keys from URL
// paths, write bodies (JSON or raw bytes) with their TTL, and which reads want raw bytes.
import { HttpError } from './http-errors.ts'
import { MAX_TTL_SECONDS } from './limits.ts'
import { encodeJsonValue } from './value-codec.ts'

/**
 * A key from a URL path (already percent-decoded by fastify) or a batch op, in the byte form
 * shards store: a latin1 string of its UTF-8 bytes. Empty and oversize keys are refused, and so
 * are control characters (C0, DEL, C1) and lone surrogates, which have no UTF-8 form (they would
 * silently become U+FFFD, another key).
 */
export function keyFromPath(decoded: string | undefined, maxKeyBytes: number): string {
  if (!decoded) throw new HttpError(400, 'invalid_key', 'key must not be empty')
  // Most keys: printable ASCII is its own UTF-8 and latin1 form, so it needs no encoding.
  if (PRINTABLE_ASCII.test(decoded)) return withinKeyLimit(decoded, decoded.length, maxKeyBytes)
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f-\x9f]/.test(decoded)) throw new HttpError(400, 'invalid_key', 'key must not contain control characters')
  if (!decoded.isWellFormed()) throw new HttpError(400, 'invalid_key', 'key must be valid Unicode (it holds a lone surrogate)')
  const bytes = Buffer.from(decoded, 'utf8')
  return withinKeyLimit(bytes.toString('latin1'), bytes.length, maxKeyBytes)
}

const PRINTABLE_ASCII = /^[\x20-\x7e]+$/

function withinKeyLimit(key: string, bytes: number, maxKeyBytes: number): string {
  if (bytes > maxKeyBytes) throw new HttpError(400, 'key_too_long', `key is ${bytes} bytes, the limit is ${maxKeyBytes}`)
  return key
}

// A query string's ttl: plain decimal notation, so "0x10", "Infinity" and " 5" are refused.
const DECIMAL_NUMBER = /^(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i

/**
 * Seconds from a JSON body or query string into milliseconds; undefined when absent. A ttl is a
 * number > 0 and at most MAX_TTL_SECONDS (so every expiry fits a shard's entry), else 400.
 */
export function ttlToMs(ttl: unknown): number | undefined {
  if (ttl === undefined) return undefined
  const seconds = typeof ttl === 'string' && DECIMAL_NUMBER.test(ttl) ? Number(ttl) : ttl
  // Written so that NaN fails too.
  if (typeof seconds !== 'number' || !(seconds > 0 && seconds <= MAX_TTL_SECONDS)) {
    throw new HttpError(400, 'invalid_ttl', `ttl must be a number of seconds greater than 0 and at most ${MAX_TTL_SECONDS} (100 years)`)
  }
  return Math.max(1, Math.round(seconds * 1000))
}

/** A ttl in a JSON body; the error handler answers its violations with invalid_ttl. */
export const ttlSchema = { type: 'number', exclusiveMinimum: 0, maximum: MAX_TTL_SECONDS } as const

export const writeBodySchema = {
  type: 'object',
  required: ['value'],
  additionalProperties: false,
  properties: { value: {}, ttl: ttlSchema },
} as const

/** Per content type: JSON bodies follow writeBodySchema, octet-stream bodies are any bytes. */
export const writeRouteBodySchema = {
  content: { 'application/json': { schema: writeBodySchema }, 'application/octet-stream': { schema: {} } },
}

export interface WriteRequest {
  bytes: Buffer
  flags: number
  ttlMs?: number
}

export function readWriteRequest(body: unknown, queryTtl: unknown, maxValueBytes: number): WriteRequest {
  let write: WriteRequest
  if (Buffer.isBuffer(body)) {
    write = { bytes: body, flags: 0, ttlMs: ttlToMs(queryTtl) }
  } else if (body === undefined) {
    // No content type, so no schema applied: say what a write needs.
    throw new HttpError(400, 'invalid_request', 'a write needs a JSON body {"value": …} or raw bytes (application/octet-stream)')
  } else {
    const { value, ttl } = body as { value: unknown; ttl?: number }
    write = { ...encodeJsonValue(value), ttlMs: ttlToMs(ttl) }
  }
  if (write.bytes.length > maxValueBytes) {
    throw new HttpError(413, 'too_large', `value is ${write.bytes.length} bytes, the limit is ${maxValueBytes}`)
  }
  return write
}

/** True when the client asked for the stored bytes themselves rather than JSON. */
export function wantsRawBytes(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('application/octet-stream') && !accept.includes('application/json')
}
