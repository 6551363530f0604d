// The route tree's vocabulary: an Op (what the front asks for, stamped with who asks), its result, a
// raw op (a peer region's shard command) and its result, and the Route interface every node implements (route an op, explain where a key goes, describe itself).
import type { RespReply } from '../../common/resp-reply-parser.ts'
import type { Tenant } from '../tenants.ts'

/** An op as the front made it; tenant: who asked (absent when the router has no tenants), whose namespace the tenant route applies. */
export type Op = OpBody & { tenant?: Tenant }

export type OpBody =
  | { kind: 'get'; key: string }
  /**
   * A versioned write (last writer wins). With a condition (Redis's NX / XX) or keepTtl it is sent
   * as the shard's plain SET, which checks the condition and stores atomically under the shard's
   * own clock: SL.SETV takes neither, so version then only orders the router's hot-key copies.
   */
  | { kind: 'set'; key: string; value: Buffer; flags: number; ttlMs?: number; version: number; condition?: 'nx' | 'xx'; keepTtl?: boolean }
  | { kind: 'delete'; key: string; version: number }
  /** by and the results are exact signed 64-bit integers (Redis's counters), hence bigint. */
  | { kind: 'incr'; key: string; by: bigint }
  /** The exact value of a counter: its key plus every sub-counter a hot counter was split into. */
  | { kind: 'counter'; key: string }
  /** Sets the remaining TTL (Redis's PEXPIRE); 0 or less deletes the key. */
  | { kind: 'expire'; key: string; ttlMs: number }
  /** The remaining TTL of the key itself (never of a hot-key copy): what TTL, PTTL and EXISTS read. */
  | { kind: 'ttl'; key: string }

export type OpResult =
  | { kind: 'get'; found: false }
  /** ttlMs is the remaining TTL, -1 when the entry never expires. */
  /** counter: the value is a counter's sum (its per-writer parts stay on the shard: copy it as a value and they are lost). */
  | { kind: 'get'; found: true; value: Buffer; flags: number; version: number; ttlMs: number; counter?: true }
  | { kind: 'set'; stored: boolean }
  | { kind: 'delete'; deleted: boolean }
  | { kind: 'incr'; value: bigint | null }
  | { kind: 'counter'; value: bigint }
  | { kind: 'expire'; applied: boolean }
  /** Redis's PTTL: ms left, -1 for a key without expiry, -2 for a missing key. */
  | { kind: 'ttl'; ttlMs: number }

/**
 * A shard command sent as it is (a peer region's write: region-receiver.ts), by key to its owner's
 * failover route, past the tenant, prefix and hot-key routes. Only versioned writes and merges go
 * this way, so it is safe to repeat on failover.
 */
export interface RawOp {
  kind: 'raw'
  key: string
  command: readonly (string | Buffer)[]
}

/** The shard's reply to a raw op as it is: an error reply is a value here (but LOADING: the next destination is tried). */
export interface RawResult {
  kind: 'raw'
  reply: RespReply
}

/** One step of a key's way through the tree, for /admin/route/:key. */
export interface RouteStep {
  route: string
  decision: string
  why: string
}

export interface Route {
  route(op: Op): Promise<OpResult>
  explain(key: string): RouteStep[]
  describe(): unknown
}
