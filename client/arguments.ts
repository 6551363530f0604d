// Checks of what a caller hands the client (keys, ttls, increments, entries, numeric options), each
// refusal a ShardlineError: the router's code where the router has the same rule (invalid_key, invalid_ttl), else invalid_argument.
import { HttpError } from '../common/http-errors.ts'
import { keyFromPath, ttlToMs } from '../common/key-api.ts'
import { INT64_MAX, INT64_MIN } from '../common/limits.ts'
import { ShardlineError, type CacheValue, type Entry } from './types.ts'

export function invalidArgument(message: string): ShardlineError {
  return new ShardlineError('invalid_argument', message)
}

/** A whole number within [min, max]; `fallback` when absent. */
export function checkWholeNumber(name: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(`${name} must be a whole number from ${min} to ${max}, not ${describe(value)}`)
  }
  return value
}

/**
 * A key by the router's rule (common/key-api.ts): a non-empty string without control characters or
 * lone surrogates. Its byte limit is the router's config (limits.maxKeyBytes), so the router checks that.
 */
export function checkKey(key: unknown): string {
  if (typeof key !== 'string') throw invalidArgument(`a key must be a string, not ${describe(key)}`)
  withRouterCode(() => keyFromPath(key, Infinity))
  return key
}

/** A ttl in seconds, as the router takes it (greater than 0, at most 100 years), into milliseconds. */
export function checkTtl(ttl: unknown): number | undefined {
  if (ttl !== undefined && typeof ttl !== 'number') throw new ShardlineError('invalid_ttl', `ttl must be a number of seconds, not ${describe(ttl)}`)
  return withRouterCode(() => ttlToMs(ttl))
}

/** An increment: a safe integer or a bigint, signed 64-bit as counters are; 1 when absent. */
export function checkIncrement(by: unknown): bigint {
  if (by === undefined) return 1n
  if (typeof by === 'number' && Number.isSafeInteger(by)) return BigInt(by)
  if (typeof by === 'bigint' && by >= INT64_MIN && by <= INT64_MAX) return by
  throw invalidArgument(`by must be a safe integer or a signed 64-bit bigint, not ${describe(by)}`)
}

/** mset's entries, from an iterable of [key, value] pairs (a Map, an array) or a plain object. */
export function checkEntries(entries: unknown): Entry[] {
  if (entries === null || typeof entries !== 'object') throw invalidArgument(`entries must be an iterable of [key, value] pairs or an object, not ${describe(entries)}`)
  const pairs: unknown[] = Symbol.iterator in entries ? [...(entries as Iterable<unknown>)] : Object.entries(entries)
  return pairs.map((pair) => {
    if (!Array.isArray(pair) || pair.length !== 2) throw invalidArgument(`each entry must be a [key, value] pair, not ${describe(pair)}`)
    return [checkKey(pair[0]), pair[1] as CacheValue] as const
  })
}

/** Runs a check of the router's, giving its refusal the router's code. */
function withRouterCode<T>(check: () => T): T {
  try {
    return check()
  } catch (error) {
    if (error instanceof HttpError) throw new ShardlineError(error.code, error.message)
    throw error
  }
}

function describe(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`
}
