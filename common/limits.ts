// The ranges that routers and shards both check numbers against (ARCHITECTURE section 14), so that
// each edge refuses the same inputs and no out-of-range number ever reaches the store.

/**
 * The longest TTL accepted anywhere: 100 years. A stored entry packs its absolute expiry into 48
 * bits of milliseconds (past the year 10000), so any TTL up to this fits whatever the clock says.
 */
export const MAX_TTL_SECONDS = 100 * 365 * 24 * 3600
export const MAX_TTL_MS = MAX_TTL_SECONDS * 1000

/** Counters are signed 64-bit integers, as in Redis: a result outside this range is an error. */
export const INT64_MAX = 2n ** 63n - 1n
export const INT64_MIN = -(2n ** 63n)

/** Room a RESP request needs beyond its value (the key, the command and the framing), in a bulk string or query buffer. */
export const RESP_REQUEST_OVERHEAD_BYTES = 64 * 1024
