// The rule for values crossing between JSON (HTTP) and raw bytes (RESP, octet-stream), shared
// by the shard's admin API and the router's front so every interface reads back the same bytes.
//
// - A JSON string is stored as its UTF-8 bytes, flags 0: RESP GET returns exactly those bytes.
// - Any other JSON value (number, object, array, boolean, null) is stored as its JSON text with
//   FLAG_JSON set, so HTTP GET returns the same JSON value and RESP GET returns the text.
// - Raw bytes (RESP SET, octet-stream POST) are stored as they are, flags 0. HTTP JSON GET returns
//   them as a string when they are valid UTF-8, else as {"value": <base64>, "encoding": "base64"};
//   `Accept: application/octet-stream` always returns the exact bytes.
import { isUtf8 } from 'node:buffer'

export const FLAG_JSON = 1

export interface EncodedValue {
  bytes: Buffer
  flags: number
}

export function encodeJsonValue(value: unknown): EncodedValue {
  if (typeof value === 'string') return { bytes: Buffer.from(value, 'utf8'), flags: 0 }
  return { bytes: Buffer.from(JSON.stringify(value), 'utf8'), flags: FLAG_JSON }
}

/**
 * The JSON text of `{"value": …}` for stored bytes, as parts that share the value's memory: a
 * JSON-flagged value is spliced in as the text it already is, and so is UTF-8 text that needs no
 * escaping (most text). A read never parses a value it only passes on, and a large value is not
 * copied into a string (each such copy costs milliseconds per MiB).
 */
export function jsonValueParts(bytes: Buffer, flags: number): Buffer[] {
  if (flags & FLAG_JSON) return [VALUE_OPEN, bytes, OBJECT_CLOSE]
  if (isUtf8(bytes)) {
    if (!needsEscape(bytes)) return [STRING_VALUE_OPEN, bytes, STRING_OBJECT_CLOSE]
    return [Buffer.from(JSON.stringify({ value: bytes.toString('utf8') }))]
  }
  return [Buffer.from(JSON.stringify({ value: bytes.toString('base64'), encoding: 'base64' }))]
}

/** jsonValueParts joined: the whole body of a single read. */
export function jsonValueBody(bytes: Buffer, flags: number): Buffer {
  return Buffer.concat(jsonValueParts(bytes, flags))
}

const VALUE_OPEN = Buffer.from('{"value":')
const OBJECT_CLOSE = Buffer.from('}')
const STRING_VALUE_OPEN = Buffer.from('{"value":"')
const STRING_OBJECT_CLOSE = Buffer.from('"}')
const QUOTE = 0x22
const BACKSLASH = 0x5c
const SPACE = 0x20

// True when a JSON string of these UTF-8 bytes needs escapes: a quote, a backslash or a control
// character (valid UTF-8 holds no lone surrogates, the only other thing JSON.stringify escapes).
function needsEscape(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]
    if (byte < SPACE || byte === QUOTE || byte === BACKSLASH) return true
  }
  return false
}
