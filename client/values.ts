// The client's value rule (types.ts CacheValue) in both directions: a value to the bytes and flags a shard
// stores or to the JSON a router takes, and stored bytes and flags or a router's JSON answer back to a value.
import { isUtf8 } from 'node:buffer'
import { encodeJsonValue, FLAG_JSON, type EncodedValue } from '../common/value-codec.ts'
import { ShardlineError, type CacheValue, type JsonValue } from './types.ts'

/** What a read asks for: the value by the value rule, or the stored bytes as they are. */
export type ReadAs = 'value' | 'buffer'

/** The bytes and flags a write stores: a Buffer as its bytes, anything else by the router's rule (common/value-codec.ts). */
export function encodeValue(value: CacheValue): EncodedValue {
  if (Buffer.isBuffer(value)) return { bytes: value, flags: 0 }
  try {
    return encodeJsonValue(value)
  } catch (cause) {
    // JSON.stringify gives undefined for undefined, functions and symbols (Buffer.from then throws) and throws on bigints and cycles.
    throw notJson(value, cause)
  }
}

/** A value that is not a Buffer as JSON text (what a router's JSON body carries). */
export function jsonText(value: JsonValue): string {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (cause) {
    throw notJson(value, cause)
  }
  if (text === undefined) throw notJson(value)
  return text
}

/** A value from the bytes and flags a shard stored. */
export function decodeValue(bytes: Buffer, flags: number, as: ReadAs): CacheValue {
  if (as === 'buffer') return bytes
  if (flags & FLAG_JSON) return JSON.parse(bytes.toString('utf8')) as JsonValue
  return isUtf8(bytes) ? bytes.toString('utf8') : bytes
}

/** A router's answer to a read, `{"value": …}` or `{"value": <base64>, "encoding": "base64"}` for bytes that are not UTF-8. */
export interface RouterValue {
  value: JsonValue
  encoding?: 'base64'
}

/**
 * A value from a router's JSON answer. The router writes a JSON-flagged value as the text it stored,
 * which was JSON.stringify's, so stringifying the parsed value again gives those very bytes back; a
 * JSON-flagged value is never a string (a string is stored as its UTF-8 text, unflagged).
 */
export function decodeRouterValue(answer: RouterValue, as: ReadAs): CacheValue {
  if (answer.encoding === 'base64') return Buffer.from(answer.value as string, 'base64')
  if (as === 'value') return answer.value
  return Buffer.from(typeof answer.value === 'string' ? answer.value : JSON.stringify(answer.value), 'utf8')
}

function notJson(value: unknown, cause?: unknown): ShardlineError {
  const what = typeof value === 'object' ? 'an object JSON cannot hold (a cycle or a bigint inside?)' : `a ${typeof value}`
  return new ShardlineError('invalid_argument', `a value must be a Buffer or a JSON value, not ${what}`, { cause })
}
