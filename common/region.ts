// Regions: the names, settings and wire that routers and shards of two clusters share, so that
// a shard's writes reach a peer region's routers and are applied there through that region's ring.
import type { SecretSource } from './secrets.ts'
import { secretSourceSchema } from './secrets.ts'
import { clientTlsSchema, type ClientTlsFiles } from './tls-files.ts'
import { REGION_SLOTS } from './hlc.ts'

/**
 * What of a pool crosses to peer regions: replicate = every value, delete and counter; invalidate =
 * deletes only (the peer's readers miss and re-read their own database); none = nothing.
 */
export type RegionMode = 'replicate' | 'invalidate' | 'none'
export const REGION_MODES: readonly RegionMode[] = ['replicate', 'invalidate', 'none']

export const REGION_NAME_PATTERN = '^[a-z0-9][a-z0-9-]{0,31}$'
export const regionNameSchema = { type: 'string', pattern: REGION_NAME_PATTERN, description: 'must be 1-32 of a-z, 0-9 and -, starting with a letter or digit' }
/** The region's slot in every version it issues (common/hlc.ts): unique among the regions that replicate to each other. */
export const regionIdSchema = { type: 'integer', minimum: 0, maximum: REGION_SLOTS - 1 }

/** A peer region as a shard reaches it: the RESP address of its routers (a VIP), and how to prove who we are. */
export interface RegionPeerConfig {
  name: string
  /** host:port of the peer region's router RESP port. */
  router: string
  /** The password the peer's routers take as AUTH region <password>; null when they are open. */
  password: SecretSource | null
  /** TLS to the peer's routers, verified against ca; null = plain TCP. */
  tls: ClientTlsFiles | null
}

/** A shard's region settings: who it is, what of its pool crosses, where to. */
export interface ShardRegionConfig {
  name: string
  id: number
  /** The pool this shard belongs to, as the peer region's routers name it. */
  pool: string
  mode: RegionMode
  peers: RegionPeerConfig[]
  /** Ops sent to a peer and not yet answered, at most. */
  maxInFlightOps: number
  /** A full scan (catch-up of a peer that lost its data, or fell out of the backlog) ships at most this many keys a second. */
  scanKeysPerSecond: number
  /** How often an idle link says hello: the peer's shard identities are checked, and lag is measured, at least this often. */
  helloMs: number
}

export const shardRegionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'id', 'pool'],
  properties: {
    name: regionNameSchema,
    id: regionIdSchema,
    pool: { type: 'string', pattern: '^[A-Za-z0-9_-]+$' },
    mode: { enum: REGION_MODES, default: 'replicate' },
    peers: {
      type: 'array',
      default: [],
      maxItems: REGION_SLOTS - 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'router'],
        properties: {
          name: regionNameSchema,
          router: { type: 'string', pattern: '^[^\\s:]+:\\d{1,5}$', description: 'must be host:port' },
          password: secretSourceSchema,
          tls: clientTlsSchema,
        },
      },
    },
    maxInFlightOps: { type: 'integer', minimum: 1, maximum: 65536, default: 1024 },
    scanKeysPerSecond: { type: 'integer', minimum: 1, maximum: 10_000_000, default: 100_000 },
    helloMs: { type: 'integer', minimum: 50, maximum: 60_000, default: 1000 },
  },
} as const

/** A router's region settings: who it is, and the passwords peer regions' shards present. */
export interface RouterRegionConfig {
  name: string
  id: number
  /** AUTH region <password> admits a peer region's shards to SL.REGION.*; empty: open, unless the router has tenants (then refused). */
  passwords: SecretSource[]
}

export const routerRegionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'id'],
  properties: {
    name: regionNameSchema,
    id: regionIdSchema,
    passwords: { type: 'array', maxItems: 16, items: secretSourceSchema, default: [] },
  },
} as const

// The wire, shard → peer router (RESP) → that region's owning shard. Every op is a versioned write
// or a merge, so sending one twice is harmless: a link that breaks resends from its last acknowledged op.
/** The user name a peer region's shard authenticates as on a router: AUTH region <password>. */
export const REGION_USER = 'region'
/**
 * SL.REGION.HELLO <origin region> <origin id> <pool> → [region name, region id, incarnation]. The
 * incarnation lists the pool's shards as "<shard>=<writer id>" joined by ",", sorted by shard name,
 * "?" for a shard that did not answer: a writer id that changed means that shard restarted (and may
 * have lost what it was sent), so the sender ships everything again by a full scan.
 */
export const REGION_HELLO = 'SL.REGION.HELLO'
/**
 * Router: SL.REGION.APPLY <origin region> <pool> <op> <key> <args…>; the router sends the owning
 * shard SL.REGION.APPLY <origin region> <op> <key> <args…> and relays its reply. op is one of
 * REGION_OPS. A reply starting TRYAGAIN or LOADING means "not applied, send it again later";
 * any other error means this op is refused for good (it is counted and skipped).
 */
export const REGION_APPLY = 'SL.REGION.APPLY'
/** Shard: SL.REGION.ID → its writer id (store.writerId), new at every process start. */
export const REGION_ID = 'SL.REGION.ID'
/** The ops that cross: versioned set, versioned delete, a packed entry (a counter's, or a scanned one). */
export const REGION_OPS = ['SL.SETV', 'SL.DELV', 'SL.PUTE', 'SL.PUTV'] as const
