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
 * The JSON text of `{"value": …}` for stored bytes. A JSON-flagged value is spliced in as the
 * text it already is: a read never parses a value it only passes on.
 */
export function jsonValueBody(bytes: Buffer, flags: number): string {
  if (flags & FLAG_JSON) return `{"value":${bytes.toString('utf8')}}`
  if (isUtf8(bytes)) return JSON.stringify({ value: bytes.toString('utf8') })
  return JSON.stringify({ value: bytes.toString('base64'), encoding: 'base64' })
}
