// Command arguments read as Redis reads them, for both RESP servers (the shard's and the router's
// front): signed 64-bit integers and TTLs in a unit, refused with the error replies Redis gives.
import { INT64_MAX, INT64_MIN, MAX_TTL_MS } from './limits.ts'

/** A refused argument or command: answered as an error reply (the message carries its prefix); the connection stays open. */
export class CommandError extends Error {}

export const NOT_INTEGER = 'ERR value is not an integer or out of range'
export const OVERFLOW = 'ERR increment or decrement would overflow'
export const SYNTAX = 'ERR syntax error'

/** No signed 64-bit integer takes more characters: read no longer argument as text. */
export const INT64_MAX_CHARS = 20

/** An argument's text as a signed 64-bit integer in Redis's syntax; anything else (2^64, 1e3, a long digit string) is refused. */
export function int64FromText(text: string): bigint {
  if (text.length > INT64_MAX_CHARS || !/^-?\d+$/.test(text)) throw new CommandError(NOT_INTEGER)
  const value = BigInt(text)
  if (value > INT64_MAX || value < INT64_MIN) throw new CommandError(NOT_INTEGER)
  return value
}

/**
 * EX, PX, EXPIRE, PEXPIRE: an int64 in units of unitMs whose value in ms is at most MAX_TTL_MS, else
 * Redis's invalid-expire-time error. Zero and below pass: SET refuses them, EXPIRE deletes.
 */
export function ttlMsFromInt64(value: bigint, unitMs: bigint, command: string): number {
  const ms = value * unitMs
  if (ms > BigInt(MAX_TTL_MS)) throw invalidExpireTime(command)
  return Number(ms)
}

/** DECRBY's delta negated: -(-2^63) does not fit in 64 bits. */
export function negateDelta(delta: bigint): bigint {
  if (delta === INT64_MIN) throw new CommandError(OVERFLOW)
  return -delta
}

export function invalidExpireTime(command: string): CommandError {
  return new CommandError(`ERR invalid expire time in '${command}' command`)
}

/** A TTL in ms as TTL answers it: rounded to the nearest second, -1 and -2 kept as they are. */
export function toSeconds(ms: number): number {
  return ms < 0 ? ms : Math.floor((ms + 500) / 1000)
}

/** Redis's reply to a command it does not know: its name and first arguments, cut and made printable. */
export function unknownCommandMessage(args: readonly Buffer[]): string {
  const shown = args.slice(1, 4).map((arg) => `'${printable(arg)}' `).join('')
  return `ERR unknown command '${printable(args[0])}', with args beginning with: ${shown}`
}

/** A client's bytes as error replies show them: cut to 128 and stripped of control bytes, as Redis does. */
export function printable(raw: Buffer): string {
  return raw.subarray(0, 128).toString('latin1').replace(/[^\x20-\x7e]/g, '?')
}
