// The shard's settings: command-line flags over an optional YAML file (--config), validated
// by a JSON Schema, with the defaults a single shard on a laptop wants.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { RESP_REQUEST_OVERHEAD_BYTES } from '../common/limits.ts'
import { parseByteSize } from '../common/byte-size.ts'
import { ConfigError, compileSchema, interpolateEnv, parseYaml, validateOrThrow } from '../common/validate.ts'
import { secretSourceSchema, type SecretSource } from '../common/secrets.ts'
import { clientTlsSchema, serverTlsSchema, type ClientTlsFiles, type ServerTlsFiles } from '../common/tls-files.ts'
import { shardRegionSchema, type ShardRegionConfig } from '../common/region.ts'
import { DEFAULT_MAX_VERSION_DRIFT_MS, EVICTION_POLICIES, type EvictionPolicy } from './store.ts'
import type { RespServerLimits } from './resp-server.ts'
import type { ReplicationSettings } from './replication.ts'

export interface ShardConfig {
  name: string
  host: string
  port: number
  adminPort: number
  maxMemory: number
  policy: EvictionPolicy
  limits: RespServerLimits
  sweep: { intervalMs: number; batch: number }
  tombstoneTtlMs: number
  /** How far ahead of this shard's clock a version from a router or a peer may be. */
  maxVersionDriftMs: number
  replication: ReplicationSettings
  /** null: open, as Redis without requirepass (the quick start). */
  auth: ShardAuthConfig | null
  /** With it, RESP and the admin HTTP serve TLS, and replication links verify their peer (read at start; files reloaded on change). */
  tls: ShardTlsConfig | null
  /** With it, this shard's writes (as its pool's mode says) are shipped to peer regions' routers; null: one region. */
  region: ShardRegionConfig | null
}

export interface ShardAuthConfig {
  /** AUTH <password> or AUTH default <password>: the data commands (GET, SET, DEL, INCR, TTL…), not the internal ones. */
  passwords: SecretSource[]
  /**
   * AUTH shardline <password> (or AUTH <password>): every command, SL.* and FLUSHALL included. Routers,
   * replication links and jobs present the first one; the admin HTTP takes any of them as a bearer token.
   */
  internalPasswords: SecretSource[]
}

export interface ShardTlsConfig extends ServerTlsFiles {
  /** How this shard's replication links verify (and present themselves to) their peers; without it, ca = the server's clientCa. */
  peers: ClientTlsFiles | null
}

type RawShardConfig = Omit<ShardConfig, 'maxMemory' | 'replication' | 'auth' | 'tls' | 'region'> & {
  region?: Omit<ShardRegionConfig, 'peers'> & { peers: Array<Omit<ShardRegionConfig['peers'][number], 'password' | 'tls'> & Partial<Pick<ShardRegionConfig['peers'][number], 'password' | 'tls'>>> }
  auth?: { passwords: SecretSource[]; internalPasswords: SecretSource[] }
  tls?: ServerTlsFiles & { peers?: ClientTlsFiles }
  maxMemory: string | number
  replication: Omit<ReplicationSettings, 'backlogBytes' | 'maxPeerBufferBytes'> & {
    backlogBytes: string | number
    maxPeerBufferBytes: string | number
    group?: string[]
    member?: number
  }
}

const port = { type: 'integer', minimum: 0, maximum: 65535 }
const MIB = 1024 * 1024
const peerAddress = { type: 'string', pattern: '^[^\\s:]+:\\d{1,5}$', description: 'must be host:port' }
const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9._-]+$', default: 'shard' },
    host: { type: 'string', minLength: 1, default: '127.0.0.1' },
    port: { ...port, default: 6380 },
    adminPort: { ...port, default: 9380 },
    maxMemory: { type: ['string', 'integer'], default: '64mb' },
    policy: { enum: EVICTION_POLICIES, default: 'lru' },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxKeyBytes: { type: 'integer', minimum: 1, maximum: 65536, default: 256 },
        maxValueBytes: { type: 'integer', minimum: 1, maximum: 512 * 1024 * 1024, default: 1024 * 1024 },
        maxArrayLength: { type: 'integer', minimum: 3, default: 1024 * 1024 },
        // A client's pipeline pauses once this many bytes of its replies are unread; also the
        // largest MGET reply.
        maxOutputBufferBytes: { type: 'integer', minimum: 1024, default: 8 * MIB },
        // An unfinished request holding more is refused and its connection closed (checked
        // below: at least one max-size value and its framing).
        maxQueryBufferBytes: { type: 'integer', minimum: 1, default: 8 * MIB },
        // All clients' query and output buffers together: past it, clients with unread
        // replies wait, and one holding more than a value's worth is closed.
        maxClientsMemory: { type: 'integer', minimum: MIB, default: 32 * MIB },
        maxClients: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 10_000 },
        // A client whose replies go unread, or whose request stays unfinished, this long is closed.
        slowClientTimeoutMs: { type: 'integer', minimum: 100, default: 10_000 },
        // A client silent this long is closed; 0 = never, as Redis's timeout.
        idleTimeoutMs: { type: 'integer', minimum: 0, default: 0 },
      },
    },
    sweep: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        intervalMs: { type: 'integer', minimum: 1, default: 100 },
        batch: { type: 'integer', minimum: 1, default: 2000 },
      },
    },
    tombstoneTtlMs: { type: 'integer', minimum: 1, default: 60_000 },
    // A version more than this many ms ahead of the shard's clock is refused.
    maxVersionDriftMs: { type: 'integer', minimum: 0, maximum: 24 * 3600 * 1000, default: DEFAULT_MAX_VERSION_DRIFT_MS },
    auth: {
      type: 'object',
      additionalProperties: false,
      required: ['internalPasswords'],
      properties: {
        passwords: { type: 'array', maxItems: 16, items: secretSourceSchema, default: [] },
        internalPasswords: { type: 'array', minItems: 1, maxItems: 16, items: secretSourceSchema },
      },
    },
    tls: { ...serverTlsSchema, properties: { ...serverTlsSchema.properties, peers: clientTlsSchema } },
    region: shardRegionSchema,
    replication: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        replicaOf: { anyOf: [peerAddress, { type: 'null' }], default: null },
        replicas: { type: 'array', items: peerAddress, default: [] },
        // A StatefulSet's pods share one spec: each is told the whole group and its own index.
        group: { type: 'array', items: peerAddress, minItems: 1 },
        member: { type: 'integer', minimum: 0 },
        backlogBytes: { type: ['string', 'integer'], default: '32mb' },
        maxPeerBufferBytes: { type: ['string', 'integer'], default: '256mb' },
        warmupTimeoutMs: { type: 'integer', minimum: 0, default: 10_000 },
        timeoutMs: { type: 'integer', minimum: 100, default: 5000 },
        heartbeatMs: { type: 'integer', minimum: 10, default: 100 },
        // A primary back from a stall answers -LOADING until its write-back links caught up.
        catchUp: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            // Keep it below the routers' connections.timeoutMs (default 1000): a shorter stall
            // cannot have made them fail over. Half of it, because a stall past it costs the
            // clients that waited through it a -LOADING, and a busy machine stalls for 300 ms now and then.
            stallMs: { type: 'integer', minimum: 20, maximum: 60_000, default: 500 },
            // 0 turns catch-up off.
            timeoutMs: { type: 'integer', minimum: 0, maximum: 600_000, default: 2000 },
          },
        },
      },
    },
  },
}
const validate = compileSchema<RawShardConfig>(schema)

/** The smallest budget accepted: room for a few max-size values plus the sketch. */
const MIN_MEMORY = 4 * 1024 * 1024

export const SHARD_USAGE = `shardline shard [options]
  --port <n>          RESP data port (default 6380; 0 picks a free one)
  --admin-port <n>    admin HTTP port (default 9380; 0 picks a free one)
  --host <addr>       address to listen on (default 127.0.0.1)
  --max-memory <size> memory budget for keys, values and overhead: bytes, or 64mb, 4gb (default 64mb)
  --policy <p>        eviction policy: lru (default), fifo or lfu
  --name <name>       shard name shown in logs, metrics and INFO (default shard)
  --replicaof <host:port>  be a replica of the primary at that data address
  --replicas <host:port,...>  be a primary with these replicas: writes they take during a
                      failover flow back, and an empty start warms up from one of them
  --group <host:port,...> --member <i>  the same, as a group's data addresses (the primary
                      first) and this shard's index in it (a StatefulSet pod's ordinal)
  --config <file>     YAML file with the same settings (flags win), plus the client limits
                      (limits.*) and maxVersionDriftMs (how far ahead of this shard's clock a
                      version may be, default 60000 ms)`

export function loadShardConfig(argv: string[]): ShardConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      port: { type: 'string' },
      'admin-port': { type: 'string' },
      host: { type: 'string' },
      'max-memory': { type: 'string' },
      policy: { type: 'string' },
      name: { type: 'string' },
      replicaof: { type: 'string' },
      replicas: { type: 'string' },
      group: { type: 'string' },
      member: { type: 'string' },
    },
    strict: true,
  })
  let fromFile: Record<string, unknown> = {}
  let where: Parameters<typeof validateOrThrow>[2] = {}
  if (values.config) {
    const parsed = parseYaml({ file: values.config, text: interpolateEnv(readFileSync(values.config, 'utf8'), values.config) })
    if (parsed.data !== null && (typeof parsed.data !== 'object' || Array.isArray(parsed.data))) throw new ConfigError(`${values.config}: must be a YAML mapping of settings`)
    fromFile = (parsed.data ?? {}) as Record<string, unknown>
    where = { file: values.config, lineOf: parsed.lineOf }
  }
  const merged: Record<string, unknown> = { ...fromFile }
  const flag = (name: keyof typeof values, key: string, convert: (text: string) => unknown = (text) => text) => {
    const text = values[name]
    if (typeof text === 'string') merged[key] = convert(text)
  }
  flag('port', 'port', toPort('--port'))
  flag('admin-port', 'adminPort', toPort('--admin-port'))
  flag('host', 'host')
  flag('max-memory', 'maxMemory')
  flag('policy', 'policy')
  flag('name', 'name')
  const replicationFlags = { ...(merged.replication as Record<string, unknown> | undefined) }
  if (values.replicaof !== undefined) replicationFlags.replicaOf = values.replicaof
  if (values.replicas !== undefined) replicationFlags.replicas = values.replicas.split(',').filter((peer) => peer !== '')
  if (values.group !== undefined) replicationFlags.group = values.group.split(',').filter((peer) => peer !== '')
  if (values.member !== undefined) replicationFlags.member = /^\d+$/.test(values.member) ? Number(values.member) : values.member
  if ([values.replicaof, values.replicas, values.group, values.member].some((value) => value !== undefined)) merged.replication = replicationFlags
  const raw = validateOrThrow(validate, merged, where)
  const maxMemory = byteSize('maxMemory', raw.maxMemory)
  if (maxMemory < MIN_MEMORY) throw new ConfigError(`maxMemory: ${maxMemory} bytes is below the minimum of 4mb`)
  const { maxQueryBufferBytes, maxValueBytes } = raw.limits
  if (maxQueryBufferBytes < maxValueBytes + RESP_REQUEST_OVERHEAD_BYTES) {
    throw new ConfigError(`limits.maxQueryBufferBytes: ${maxQueryBufferBytes} is below limits.maxValueBytes + 64 KiB (${maxValueBytes + RESP_REQUEST_OVERHEAD_BYTES}): a request carrying a max-size value must fit`)
  }
  const { group, member, ...settings } = raw.replication
  const replication = {
    ...settings,
    ...groupRole(group, member),
    backlogBytes: byteSize('replication.backlogBytes', raw.replication.backlogBytes),
    maxPeerBufferBytes: byteSize('replication.maxPeerBufferBytes', raw.replication.maxPeerBufferBytes),
  }
  if (replication.replicaOf && replication.replicas.length > 0) throw new ConfigError('replication: a shard is either a replica (replicaOf) or a primary with replicas, not both')
  const { auth, tls, region, ...rest } = raw
  return { ...rest, maxMemory, replication, auth: auth ?? null, tls: tls ? { ...tls, peers: tls.peers ?? null } : null, region: region ? shardRegion(region) : null }
}

function shardRegion(raw: NonNullable<RawShardConfig['region']>): ShardRegionConfig {
  const names = new Set([raw.name])
  for (const peer of raw.peers) {
    if (names.has(peer.name)) throw new ConfigError(`region.peers: ${peer.name} is ${peer.name === raw.name ? 'this region' : 'listed twice'}`)
    names.add(peer.name)
  }
  return { ...raw, peers: raw.peers.map((peer) => ({ ...peer, password: peer.password ?? null, tls: peer.tls ?? null })) }
}

// Member 0 of a group is its primary, with every other member as a replica; the others are
// replicas of member 0.
function groupRole(group: string[] | undefined, member: number | undefined): Partial<ReplicationSettings> {
  if (group === undefined && member === undefined) return {}
  if (group === undefined || member === undefined) throw new ConfigError('replication: group and member go together (the group\'s data addresses, and this shard\'s index in it)')
  if (member >= group.length) throw new ConfigError(`replication.member: ${member} is not an index into a group of ${group.length}`)
  return member === 0 ? { replicaOf: null, replicas: group.slice(1) } : { replicaOf: group[0], replicas: [] }
}

function byteSize(path: string, value: string | number): number {
  try {
    return parseByteSize(value)
  } catch (error) {
    throw new ConfigError(`${path}: ${(error as Error).message}`)
  }
}

function toPort(flagName: string): (text: string) => number {
  return (text) => {
    const value = Number(text)
    if (!/^\d+$/.test(text) || value > 65535) throw new ConfigError(`${flagName}: "${text}" is not a port number (0-65535)`)
    return value
  }
}
