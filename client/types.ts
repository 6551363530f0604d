// The client library's public vocabulary: the values it stores, the options every call takes, the
// client interface both modes (HTTP through a router, direct to the shards) implement, and the transport seam between them.

/** A JSON value as JSON.parse gives it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

/**
 * What the cache stores and returns. A string is stored as its UTF-8 bytes, a Buffer as its bytes,
 * any other JSON value as its JSON text marked as JSON (the router's HTTP rule, common/value-codec.ts).
 * A read gives back a JSON value as it was written, bytes that are UTF-8 text as a string, and other
 * bytes as a Buffer (or always a Buffer with `{ as: 'buffer' }`). A stored JSON `null` reads back
 * as null, like a miss: read with `{ as: 'buffer' }` to tell them apart (the text `null`, or null).
 */
export type CacheValue = JsonValue | Buffer

/** Where a direct-mode client reads the pools and shards from. */
export type TopologySource =
  /** A router's admin URL (http://host:9090): GET /admin/topology, refreshed when its generation changes. */
  | { adminUrl: string; refreshMs?: number }
  /** A router config file (YAML), read once. */
  | { configFile: string }

export interface ClientOptions {
  /** HTTP mode: the router VIP, e.g. http://shardline-router:8080. */
  url?: string
  /** Direct mode: hash keys on the client and speak RESP straight to the shards (trusted services only). */
  topology?: TopologySource
  /** Per-call timeout in milliseconds (default 1000). */
  timeoutMs?: number
  /** Calls in flight at most; past it a call rejects with code 'queue_full' (default 10,000). */
  maxInFlight?: number
  /** HTTP mode: keep-alive connections to the router (default 16). */
  connections?: number
  /** HTTP mode: tries of an idempotent call after a 503, 504 or connection error (default 2). */
  retries?: number
  /**
   * A tenant's token, sent to the router as `Authorization: Bearer <token>` on every request (in direct
   * mode, on the topology fetch from adminUrl: an admin tenant's). Never logged or put in an error message.
   */
  token?: string
  /** The CA certificate (PEM) that signed the router's certificate, for an https url or adminUrl under a private CA. */
  ca?: string | Buffer
  /** Direct mode: how to reach shards that require a password or serve TLS (as a router's config shardAccess; in place of a configFile's own). */
  shardAccess?: ShardAccessOptions
}

/** Direct mode's credentials for the shards: what a router's config gives as `shardAccess`. */
export interface ShardAccessOptions {
  /** The shards' internal password: the client authenticates as AUTH shardline <password>. */
  password?: string
  /** RESP over TLS to the shards, each one's certificate verified against `ca`. Files, read again when they change. */
  tls?: {
    /** Path of the CA certificate (PEM). */
    ca: string
    /** Paths of a client certificate and its key, for shards that require one (both or neither). */
    cert?: string
    key?: string
    /** The name the shards' certificates carry, when it is not the host connected to. */
    serverName?: string
  }
}

/** What every call takes. */
export interface CallOptions {
  /** Abandons the call: it rejects with code 'aborted' (a write may still have been applied). */
  signal?: AbortSignal
  /** Milliseconds before the call rejects with code 'timeout'; the client's `timeoutMs` otherwise. */
  timeoutMs?: number
}

export interface GetOptions extends CallOptions {
  /** 'buffer': the stored bytes as a Buffer, whatever they hold (a JSON value as its JSON text). */
  as?: 'value' | 'buffer'
}

export interface SetOptions extends CallOptions {
  /** Seconds to live: greater than 0, at most 100 years. No expiry when absent. */
  ttl?: number
}

/** One mset entry. */
export type Entry = readonly [key: string, value: CacheValue]

export interface ShardlineClient {
  /** The value, or null on a miss. */
  get(key: string, options?: GetOptions): Promise<CacheValue | null>
  /** Stores the value; true when stored. */
  set(key: string, value: CacheValue, options?: SetOptions): Promise<boolean>
  /** True when there was a value to delete. */
  del(key: string, options?: CallOptions): Promise<boolean>
  /** The values in the keys' order, null for each miss. */
  mget(keys: readonly string[], options?: GetOptions): Promise<Array<CacheValue | null>>
  /** Stores every entry (per key, not atomic across keys); true per entry stored. */
  mset(entries: Iterable<Entry> | Record<string, CacheValue>, options?: SetOptions): Promise<boolean[]>
  /**
   * Adds `by` (default 1, a signed 64-bit integer) to a counter; its new total, or null when the
   * router batches a hot counter's increments (read the total with counter()). Never retried.
   */
  incr(key: string, by?: number | bigint, options?: CallOptions): Promise<bigint | null>
  /** A counter's exact total (0 when it does not exist). */
  counter(key: string, options?: CallOptions): Promise<bigint>
  /** Waits for calls in flight, then closes every connection. Calls after close reject with code 'closed'. */
  close(): Promise<void>
}

/** Why a call failed. `code` is the router API's error code, or one of the client's own. */
export class ShardlineError extends Error {
  readonly code: string
  /** The HTTP status the router answered with, when it answered. */
  readonly status: number | undefined
  /** rate_limited: how long the router said to wait before the tenant's next request is let in (its Retry-After). */
  readonly retryAfterMs: number | undefined

  constructor(code: string, message: string, options: { status?: number; cause?: unknown; retryAfterMs?: number } = {}) {
    super(message, { cause: options.cause })
    this.name = 'ShardlineError'
    this.code = code
    this.status = options.status
    this.retryAfterMs = options.retryAfterMs
  }
}

/**
 * The client's own codes, beside the router's (shard_timeout, shard_unavailable, invalid_key,
 * not_a_counter, …, and for a router with tenants: unauthorized (401, no token or a token it does
 * not know), forbidden (403, a permission the token's tenant lacks) and rate_limited (429, with
 * retryAfterMs); none of the three is retried): the call timed out or was aborted on the client, the router or a shard
 * could not be reached, too many calls were in flight, the client was closed, an argument was invalid,
 * direct mode could not load its topology (router unreachable, invalid config, unreadable file).
 */
export const CLIENT_ERROR_CODES = ['timeout', 'aborted', 'connection_error', 'queue_full', 'closed', 'invalid_argument', 'topology_unavailable'] as const

/**
 * What a mode implements: the client's calls with their options already checked and normalised
 * (ttl in ms, `by` a bigint, entries an array) and one signal that fires on abort or timeout.
 * The client facade (client/client.ts) does the checking, the deadline and the error wrapping.
 */
export interface Transport {
  get(keys: readonly string[], as: 'value' | 'buffer', signal: AbortSignal): Promise<Array<CacheValue | null>>
  set(entries: readonly Entry[], ttlMs: number | undefined, signal: AbortSignal): Promise<boolean[]>
  del(key: string, signal: AbortSignal): Promise<boolean>
  incr(key: string, by: bigint, signal: AbortSignal): Promise<bigint | null>
  counter(key: string, signal: AbortSignal): Promise<bigint>
  close(): Promise<void>
}
