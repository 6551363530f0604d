// Checks of what a caller hands the client (keys, ttls, increments, entries, numeric options, credentials), each
// refusal a ShardlineError: the router's code where the router has the same rule (invalid_key, invalid_ttl), else invalid_argument.
import { X509Certificate } from 'node:crypto'
import { HttpError } from '../common/http-errors.ts'
import { keyFromPath, ttlToMs } from '../common/key-api.ts'
import { INT64_MAX, INT64_MIN } from '../common/limits.ts'
import type { ClientTlsFiles } from '../common/tls-files.ts'
import { ShardlineError, type CacheValue, type Entry, type ShardAccessOptions } from './types.ts'

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

/**
 * A bearer token: printable ASCII without spaces, as an Authorization header carries it. The
 * refusal never quotes the token (it is a secret, and a wrong one is likely a near miss).
 */
export function checkToken(token: unknown): string | undefined {
  if (token === undefined) return undefined
  if (typeof token !== 'string' || !/^[\x21-\x7e]{1,4096}$/.test(token)) {
    throw invalidArgument(`token must be a string of 1 to 4096 printable ASCII characters without spaces${typeof token === 'string' ? '' : `, not ${describe(token)}`}`)
  }
  return token
}

/** A CA certificate in PEM (a bundle: its first certificate is checked), as text or bytes. */
export function checkCa(ca: unknown): string | Buffer | undefined {
  if (ca === undefined) return undefined
  if (typeof ca !== 'string' && !Buffer.isBuffer(ca)) throw invalidArgument(`ca must be a PEM certificate as a string or Buffer, not ${describe(ca)}`)
  try {
    new X509Certificate(ca)
  } catch (error) {
    throw invalidArgument(`ca must be a PEM certificate ("-----BEGIN CERTIFICATE-----…"): ${(error as Error).message}`)
  }
  return ca
}

/** Direct mode's shard credentials, as a router config's shardAccess: the password and the TLS files. */
export function checkShardAccess(access: unknown): { password: string | null; tls: ClientTlsFiles | null } {
  if (access === undefined) return { password: null, tls: null }
  const shape = 'shardAccess must be { password?, tls?: { ca, cert?, key?, serverName? } }'
  if (access === null || typeof access !== 'object') throw invalidArgument(`${shape}, not ${describe(access)}`)
  const { password, tls, ...rest } = access as ShardAccessOptions
  checkNoOthers('shardAccess', rest)
  if (password !== undefined && (typeof password !== 'string' || password === '')) throw invalidArgument('shardAccess.password must be a non-empty string')
  return { password: password ?? null, tls: tls === undefined ? null : checkTlsFiles(tls) }
}

function checkTlsFiles(tls: unknown): ClientTlsFiles {
  if (tls === null || typeof tls !== 'object') throw invalidArgument(`shardAccess.tls must be { ca, cert?, key?, serverName? } (file paths), not ${describe(tls)}`)
  const { ca, cert, key, serverName, ...rest } = tls as Partial<ClientTlsFiles>
  checkNoOthers('shardAccess.tls', rest)
  const files: ClientTlsFiles = { ca: checkPath('shardAccess.tls.ca', ca) }
  if ((cert === undefined) !== (key === undefined)) throw invalidArgument('shardAccess.tls: give cert and key together, or neither')
  if (cert !== undefined) Object.assign(files, { cert: checkPath('shardAccess.tls.cert', cert), key: checkPath('shardAccess.tls.key', key) })
  if (serverName !== undefined) {
    if (typeof serverName !== 'string' || serverName === '') throw invalidArgument(`shardAccess.tls.serverName must be a host name, not ${describe(serverName)}`)
    files.serverName = serverName
  }
  return files
}

function checkPath(name: string, path: unknown): string {
  if (typeof path !== 'string' || path === '') throw invalidArgument(`${name} must be a file path, not ${describe(path)}`)
  return path
}

function checkNoOthers(name: string, rest: object): void {
  const others = Object.keys(rest)
  if (others.length > 0) throw invalidArgument(`${name} has no option${others.length > 1 ? 's' : ''} ${others.join(', ')}`)
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
