// Turns a key from a URL path (already percent-decoded by fastify) into the byte form shards
// store (a latin1 string of its UTF-8 bytes), refusing empty, oversize and control-character keys.
import { HttpError } from './http-errors.ts'

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
