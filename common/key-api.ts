// The HTTP key API's rules, shared by the shard's /keys and the router's front: keys from URL
// paths, write bodies (JSON or raw bytes) with their TTL, and which reads want raw bytes.
import { HttpError } from './http-errors.ts'
import { encodeJsonValue } from './value-codec.ts'

/**
 * A key from a URL path (already percent-decoded by fastify) in the byte form shards store: a
 * latin1 string of its UTF-8 bytes. Empty, oversize and control-character keys are refused.
 */
export function keyFromPath(decoded: string | undefined, maxKeyBytes: number): string {
  if (!decoded) throw new HttpError(400, 'invalid_key', 'key must not be empty')
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(decoded)) throw new HttpError(400, 'invalid_key', 'key must not contain control characters')
  const bytes = Buffer.from(decoded, 'utf8')
  if (bytes.length > maxKeyBytes) throw new HttpError(400, 'key_too_long', `key is ${bytes.length} bytes, the limit is ${maxKeyBytes}`)
  return bytes.toString('latin1')
}

/** Seconds from a JSON body or query string into milliseconds; undefined when absent. */
export function ttlToMs(ttl: unknown): number | undefined {
  if (ttl === undefined) return undefined
  const seconds = typeof ttl === 'string' && ttl.trim() !== '' ? Number(ttl) : ttl
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) {
    throw new HttpError(400, 'invalid_ttl', 'ttl must be a positive number of seconds')
  }
  return Math.max(1, Math.round(seconds * 1000))
}

export const writeBodySchema = {
  type: 'object',
  required: ['value'],
  additionalProperties: false,
  properties: { value: {}, ttl: { type: 'number', exclusiveMinimum: 0 } },
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
