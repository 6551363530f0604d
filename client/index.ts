// The package's public entry, `shardline/client`: createClient, ShardlineError and the types a caller
// writes against; everything else under client/ is internal.
/**
 * The shardline client library.
 *
 * ```ts
 * import { createClient, ShardlineError } from 'shardline/client'
 *
 * const cache = createClient({ url: 'http://shardline-router:8080' })
 * await cache.set('user:42', { name: 'Ada' }, { ttl: 60 })
 * const user = await cache.get('user:42') // { name: 'Ada' }, or null on a miss
 * try {
 *   await cache.incr('user:42')
 * } catch (error) {
 *   if (error instanceof ShardlineError && error.code === 'not_a_counter') console.log('not a counter')
 * }
 * await cache.close()
 * ```
 *
 * HTTP mode (`{ url }`) talks to a router: keep-alive connections, the gets, sets and deletes issued in
 * one event-loop turn sent as one batch (a lone call as its plain request), idempotent calls retried
 * on 503, 504 and lost connections, increments never. Direct mode (`{ topology }`) routes on the client
 * with the router's own route tree and talks RESP to the shards (trusted services only: it needs to
 * reach the shards). Every call takes an AbortSignal and a timeout and fails with a {@link ShardlineError}.
 * Calls issued together, without awaiting one another, run concurrently: a get issued in the same turn
 * as a set of the same key may read the value from before the set.
 *
 * @packageDocumentation
 */
export { createClient } from './client.ts'
export { CLIENT_ERROR_CODES, ShardlineError } from './types.ts'
export type { CacheValue, CallOptions, ClientOptions, Entry, GetOptions, JsonValue, SetOptions, ShardAccessOptions, ShardlineClient, TopologySource } from './types.ts'
