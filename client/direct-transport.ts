// Direct mode: the router's own route tree inside the client (prefix -> hot keys -> pool -> failover
// over pipelined RESP connections with health checks, authenticated and over TLS as the caller's
// shardAccess says), built from a topology and rebuilt when it changes.
import { pino } from 'pino'
import { HybridLogicalClock } from '../common/hlc.ts'
import { HashRing } from '../common/ring.ts'
import { HttpError } from '../common/http-errors.ts'
import { keyFromPath } from '../common/key-api.ts'
import type { Logger } from '../common/logger.ts'
import type { HotKeyMetrics, WarmUpMetrics } from '../router/metrics.ts'
import { poolRing } from '../router/pool-layout.ts'
import { RouteTree, type PoolLayout, type PreviousLayouts } from '../router/route-tree.ts'
import type { Op, OpResult, RouteStep } from '../router/routes/route.ts'
import type { ShardAccessConfig } from '../router/config.ts'
import { ShardAccess } from '../router/shard-access.ts'
import { checkShardAccess } from './arguments.ts'
import { TopologyFeed, type Topology } from './topology.ts'
import { ShardlineError, type CacheValue, type ClientOptions, type Entry, type Transport } from './types.ts'
import { decodeValue, encodeValue } from './values.ts'

/** How long a replaced tree's ops in flight may take before its connections close (as on a router's reload). */
const REPLACED_TREE_GRACE_MS = 10_000

/** The client's default call timeout, which a topology fetch gets too: the first call waits for one. */
const DEFAULT_TIMEOUT_MS = 1000

// The hot-key and warm-up nodes report to a router's /metrics; a client has none to serve them on.
const NO_ROUTE_METRICS: { hotKeys: HotKeyMetrics; warmUp: WarmUpMetrics } = {
  hotKeys: { copyRead() {}, copyFill() {}, counterBatch() {} },
  warmUp: { read() {}, backfill() {}, declarePool() {} },
}

export class DirectTransport implements Transport {
  private readonly feed: TopologyFeed
  /** Versions for writes, as a router's front issues them. */
  private readonly clock = new HybridLogicalClock()
  private readonly log: Logger
  /** The caller's shardAccess, in place of the topology's (none from a router; a config file's own otherwise). */
  private readonly shardAccess: ShardAccessConfig | null
  private tree: RouteTree | null = null
  /** Trees replaced by a newer topology, closing once their ops in flight are done. */
  private readonly replaced = new Set<RouteTree>()
  private closed = false

  constructor(options: ClientOptions) {
    if (!options.topology) throw new ShardlineError('invalid_argument', 'direct mode needs options.topology: { adminUrl } or { configFile }')
    this.shardAccess = options.shardAccess === undefined ? null : checkShardAccess(options.shardAccess)
    if (this.shardAccess) {
      // Read now, as each route tree will: a file that cannot be read fails createClient, not the first call.
      try {
        new ShardAccess(this.shardAccess, () => {}).close()
      } catch (error) {
        throw new ShardlineError('invalid_argument', `shardAccess: ${(error as Error).message}`)
      }
    }
    // Warnings only (knock-outs, failed refreshes), on stderr: a library does not write to its user's stdout.
    this.log = pino({ name: 'shardline-client', level: process.env.SHARDLINE_LOG_LEVEL ?? 'warn' }, pino.destination(2))
    this.feed = new TopologyFeed({ source: options.topology, fetchTimeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS, token: options.token, ca: options.ca, log: this.log, onChange: (topology) => this.replace(topology) })
  }

  get(keys: readonly string[], as: 'value' | 'buffer', signal: AbortSignal): Promise<Array<CacheValue | null>> {
    return this.run(signal, async (tree) => {
      const maxKeyBytes = tree.config.limits.maxKeyBytes
      const storedKeys = keys.map((key) => keyFromPath(key, maxKeyBytes))
      // A key asked for twice is read once, as in a router's batch.
      const reads = new Map<string, Promise<OpResult>>()
      const results = await Promise.all(storedKeys.map((key) => {
        let read = reads.get(key)
        if (!read) {
          read = tree.route({ kind: 'get', key })
          reads.set(key, read)
        }
        return read
      }))
      return results.map((result) => (result.kind === 'get' && result.found ? decodeValue(result.value, result.flags, as) : null))
    })
  }

  set(entries: readonly Entry[], ttlMs: number | undefined, signal: AbortSignal): Promise<boolean[]> {
    return this.run(signal, async (tree) => {
      const { maxKeyBytes, maxValueBytes } = tree.config.limits
      // Every entry is checked before any is sent, so a bad one changes nothing.
      const ops: Op[] = entries.map(([key, value]) => {
        const storedKey = keyFromPath(key, maxKeyBytes)
        const { bytes, flags } = encodeValue(value)
        if (bytes.length > maxValueBytes) throw new HttpError(413, 'too_large', `value is ${bytes.length} bytes, the limit is ${maxValueBytes}`)
        return { kind: 'set', key: storedKey, value: bytes, flags, ttlMs, version: this.clock.next() }
      })
      const results = await Promise.all(ops.map((op) => tree.route(op)))
      return results.map((result) => result.kind === 'set' && result.stored)
    })
  }

  del(key: string, signal: AbortSignal): Promise<boolean> {
    return this.run(signal, async (tree) => {
      const result = await tree.route({ kind: 'delete', key: keyFromPath(key, tree.config.limits.maxKeyBytes), version: this.clock.next() })
      return result.kind === 'delete' && result.deleted
    })
  }

  incr(key: string, by: bigint, signal: AbortSignal): Promise<bigint | null> {
    return this.run(signal, async (tree) => {
      const result = await tree.route({ kind: 'incr', key: keyFromPath(key, tree.config.limits.maxKeyBytes), by })
      return result.kind === 'incr' ? result.value : null
    })
  }

  counter(key: string, signal: AbortSignal): Promise<bigint> {
    return this.run(signal, async (tree) => {
      const result = await tree.route({ kind: 'counter', key: keyFromPath(key, tree.config.limits.maxKeyBytes) })
      return result.kind === 'counter' ? result.value : 0n
    })
  }

  /** Where this client sends a key (the steps a router's GET /admin/route/:key lists), and the topology generation it routes by. */
  async explain(key: string): Promise<{ generation: number; steps: RouteStep[] }> {
    const tree = this.tree ?? await this.firstTree()
    return { generation: this.feed.generation, steps: tree.explain(keyFromPath(key, tree.config.limits.maxKeyBytes)) }
  }

  async close(): Promise<void> {
    this.closed = true
    this.feed.close()
    const trees = [...this.replaced, ...(this.tree ? [this.tree] : [])]
    this.tree = null
    this.replaced.clear()
    // The facade has waited for its calls: what is still in flight was abandoned (aborted, timed out).
    await Promise.all(trees.map((tree) => tree.close(0)))
  }

  /**
   * Routes one call on the current tree (read once, so a topology change never splits a call). A
   * command sent cannot be recalled: on abort the call rejects at once and the reply is dropped.
   */
  private async run<T>(signal: AbortSignal, routeOn: (tree: RouteTree) => Promise<T>): Promise<T> {
    const tree = this.tree ?? await untilAborted(this.firstTree(), signal)
    signal.throwIfAborted()
    return untilAborted(routeOn(tree), signal)
  }

  private async firstTree(): Promise<RouteTree> {
    const topology = await this.feed.first()
    if (this.closed) throw new ShardlineError('closed', 'the client is closed')
    this.tree ??= this.build(topology, routerWindows(topology))
    return this.tree
  }

  // As a router reloads: the new tree carries the old one's rings and migration windows, and
  // the old one closes once the ops that started on it are done.
  private replace(topology: Topology): void {
    if (this.closed) return
    const previous = this.tree
    this.tree = this.build(topology, previous ?? undefined)
    this.log.info({ generation: topology.generation }, 'topology changed: route tree rebuilt')
    if (!previous) return
    this.replaced.add(previous)
    void previous.close(REPLACED_TREE_GRACE_MS).then(() => this.replaced.delete(previous))
  }

  private build(topology: Topology, previous: PreviousLayouts | undefined): RouteTree {
    const config = this.shardAccess ? { ...topology.config, shardAccess: this.shardAccess } : topology.config
    return new RouteTree(config, topology.generation, this.log, () => {}, NO_ROUTE_METRICS, previous)
  }
}

/**
 * The migration windows the router has open, as layouts for a first tree to carry on: reads that
 * miss on a key's new owner read its previous owners until the router's deadline, as the router's do.
 */
function routerWindows(topology: Topology): PreviousLayouts {
  const layouts = new Map<string, PoolLayout>()
  const now = Date.now()
  for (const [pool, window] of Object.entries(topology.migrations)) {
    const config = topology.config.pools[pool]
    if (!config) continue
    layouts.set(pool, {
      ring: poolRing(config, topology.config.hashing.pointsPerShard),
      migration: { rings: window.previousRings.map((ring) => new HashRing(ring.shards, ring.pointsPerShard)), deadline: now + window.msLeft },
    })
  }
  return { config: topology.config, layouts }
}

/** The outcome, or a rejection with the signal's reason as soon as it aborts (the outcome is then dropped). */
function untilAborted<T>(outcome: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    outcome.catch(() => {})
    return Promise.reject(signal.reason)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    outcome.then((value) => {
      signal.removeEventListener('abort', onAbort)
      resolve(value)
    }, (error: unknown) => {
      signal.removeEventListener('abort', onAbort)
      reject(error)
    })
  })
}
