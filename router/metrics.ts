// The router's Prometheus metrics: requests and latency by op and status, connection-pool saturation and
// health per destination, knock-outs, config reloads, client connections held and shed, response bytes,
// hot keys, the warm-up route's read-throughs, back-fills and migration windows, and security: auth
// failures, requests and rate-limited requests by tenant, TLS handshake failures; peer regions' writes
// applied and refused.
import type { Server } from 'node:net'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { LATENCY_BUCKETS_SECONDS, mirroredCounter } from '../common/metric-helpers.ts'
import type { ShardDestination } from './shard-destination.ts'

export type FrontOp = 'get' | 'set' | 'delete' | 'batch' | 'incr' | 'counter'

/** What the hot-key route reports (hot reads and counter batches only, not every request). */
export interface HotKeyMetrics {
  copyRead(outcome: 'hit' | 'miss' | 'stale'): void
  copyFill(): void
  counterBatch(size: number): void
}

/** What the warm-up route reports (read-throughs only: reads that missed on a key's new owner). */
export interface WarmUpMetrics {
  /** hit: found on a previous owner; miss: in neither. */
  read(pool: string, outcome: 'hit' | 'miss'): void
  /** older: the new owner had as new or newer (a write or a delete landed first). */
  backfill(pool: string, outcome: 'stored' | 'older' | 'failed'): void
  /** Exports the pool's series at 0, so that a dashboard shows 0 rather than no data before a migration. */
  declarePool(pool: string): void
}

/** Why a peer region's op was not applied: retry (send it again later), refused (for good), unauthorized. */
export type RegionErrorReason = 'retry' | 'refused' | 'unauthorized'

/** What the region receiver reports; origin is a region name it bounds (no label straight from client bytes). */
export interface RegionMetrics {
  applied(origin: string, pool: string): void
  error(origin: string, reason: RegionErrorReason): void
}

export class RouterMetrics {
  readonly registry = new Registry()
  readonly knockouts: Counter<'pool' | 'shard' | 'role'>
  readonly reloads: Counter<'outcome'>
  readonly connectionsShed: Counter<'port' | 'reason'>
  /** reason: missing_token, bad_token or forbidden (a permission the tenant lacks). */
  readonly authFailures: Counter<'reason'>
  /** Requests let in, by tenant (a batch counts once). */
  readonly tenantRequests: Counter<'tenant'>
  /** mode enforce: refused with 429; shadow: would have been. */
  readonly rateLimited: Counter<'tenant' | 'mode'>
  /** port: data, admin or resp. */
  readonly tlsHandshakeFailures: Counter<'port'>
  /** Read at scrape time, once the servers that know them exist. */
  private readonly servers = new Map<string, Server>()
  private responseBytesHeld: () => number = () => 0
  private migrationWindows: () => ReadonlyMap<string, number> = () => new Map()
  private readonly duration: Histogram<'op'>
  private readonly durationByOp = new Map<string, { observe(seconds: number): void }>()
  private readonly requestCounts: LabelCounts = new Map()
  private readonly respDuration: Histogram<'command'>
  private readonly respDurationByCommand = new Map<string, { observe(seconds: number): void }>()
  private readonly respCounts: LabelCounts = new Map()

  readonly hotKeys: HotKeyMetrics
  readonly warmUp: WarmUpMetrics
  readonly region: RegionMetrics

  constructor(destinations: () => readonly ShardDestination[], generation: () => number, hotKeyCount: () => number = () => 0) {
    collectDefaultMetrics({ register: this.registry })
    const registers = [this.registry]
    mirroredCounter({
      name: 'shardline_router_requests_total',
      help: 'HTTP requests on the data port, by op and HTTP status.',
      labelNames: ['op', 'code'],
      registry: this.registry,
      read: () => [...this.requestCounts.values()].map(({ labels, count }): [Record<string, string>, number] => [labels, count]),
    })
    mirroredCounter({
      name: 'shardline_router_resp_commands_total',
      help: 'Commands on the RESP port, by command (lower case) and outcome (ok, or the error reply\'s code: err, shard_timeout, …).',
      labelNames: ['command', 'outcome'],
      registry: this.registry,
      read: () => [...this.respCounts.values()].map(({ labels, count }): [Record<string, string>, number] => [labels, count]),
    })
    this.respDuration = new Histogram({ name: 'shardline_router_resp_command_duration_seconds', help: 'Time from command parsed to reply ready, by command, on the RESP port.', labelNames: ['command'], buckets: LATENCY_BUCKETS_SECONDS, registers })
    this.duration = new Histogram({ name: 'shardline_router_request_duration_seconds', help: 'Time from request parsed to reply sent, by op.', labelNames: ['op'], buckets: LATENCY_BUCKETS_SECONDS, registers })
    this.knockouts = new Counter({ name: 'shardline_router_knockouts_total', help: 'Destinations knocked out by health checks or failed connections.', labelNames: ['pool', 'shard', 'role'], registers })
    this.reloads = new Counter({ name: 'shardline_router_config_reloads_total', help: 'Config reloads, by outcome (success or failure).', labelNames: ['outcome'], registers })
    this.connectionsShed = new Counter({ name: 'shardline_router_connections_shed_total', help: 'Client connections closed by the connection cap, by port and reason: idle (closed to admit a new one) or refused (every connection was busy).', labelNames: ['port', 'reason'], registers })
    this.authFailures = new Counter({ name: 'shardline_router_auth_failures_total', help: 'Requests refused for their credentials, by reason: missing_token, bad_token (401), forbidden (403).', labelNames: ['reason'], registers })
    this.tenantRequests = new Counter({ name: 'shardline_router_tenant_requests_total', help: 'Requests authenticated, by tenant (HTTP requests and RESP commands; a batch counts once).', labelNames: ['tenant'], registers })
    this.rateLimited = new Counter({ name: 'shardline_router_rate_limited_total', help: 'Requests past their tenant\'s rate limit, by tenant and mode: enforce (refused with 429) or shadow (counted, let through).', labelNames: ['tenant', 'mode'], registers })
    this.tlsHandshakeFailures = new Counter({ name: 'shardline_router_tls_handshake_failures_total', help: 'TLS handshakes that failed on a client port (data, admin or resp).', labelNames: ['port'], registers })
    const servers = this.servers
    new Gauge({
      name: 'shardline_router_connections',
      help: 'Client connections open, by port (data or admin).',
      labelNames: ['port'],
      registers,
      async collect() {
        this.reset()
        for (const [port, server] of servers) {
          this.set({ port }, await new Promise<number>((resolve) => server.getConnections((_error, count) => resolve(count ?? 0))))
        }
      },
    })
    const responseBytes = () => this.responseBytesHeld()
    new Gauge({ name: 'shardline_router_response_bytes_in_flight', help: 'Bytes of values held by responses in progress (bounded by limits.maxInFlightResponseBytes).', registers, collect() { this.set(responseBytes()) } })
    new Gauge({ name: 'shardline_router_config_generation', help: 'How many configs this router has loaded (1 = the first).', registers, collect() { this.set(generation()) } })
    const perDestination = (name: string, help: string, read: (d: ShardDestination) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['pool', 'shard', 'role', 'address'],
        registers,
        collect() {
          this.reset()
          for (const d of destinations()) this.set({ pool: d.id.pool, shard: d.id.shard, role: d.id.role, address: d.address }, read(d))
        },
      })
    new Gauge({ name: 'shardline_router_hot_keys', help: 'Keys this router currently treats as hot (reads spread over copies).', registers, collect() { this.set(hotKeyCount()) } })
    const copyReads = new Counter({ name: 'shardline_router_hot_copy_reads_total', help: 'Reads of hot-key copies, by outcome: hit, miss (filled from the base key), stale (older than this router\'s own write).', labelNames: ['outcome'], registers })
    const copyFills = new Counter({ name: 'shardline_router_hot_copy_fills_total', help: 'Hot-key copies filled from their base key.', registers })
    const batches = new Histogram({ name: 'shardline_router_counter_batch_size', help: 'Increments carried by one batched write to a hot counter.', buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], registers })
    const byOutcome = { hit: copyReads.labels('hit'), miss: copyReads.labels('miss'), stale: copyReads.labels('stale') }
    this.hotKeys = {
      copyRead: (outcome) => byOutcome[outcome].inc(),
      copyFill: () => copyFills.inc(),
      counterBatch: (size) => batches.observe(size),
    }
    const warmUpReads = new Counter({ name: 'shardline_router_warmup_reads_total', help: 'Reads that missed on a key\'s new owner during a migration, by pool and outcome: hit (found on a previous owner) or miss (in neither).', labelNames: ['pool', 'outcome'], registers })
    const backfills = new Counter({ name: 'shardline_router_warmup_backfills_total', help: 'Values found on a previous owner and written to the new one, by pool and outcome: stored, older (the new owner had as new or newer), failed.', labelNames: ['pool', 'outcome'], registers })
    this.warmUp = {
      read: (pool, outcome) => warmUpReads.inc({ pool, outcome }),
      backfill: (pool, outcome) => backfills.inc({ pool, outcome }),
      declarePool: (pool) => {
        for (const outcome of ['hit', 'miss']) warmUpReads.inc({ pool, outcome }, 0)
        for (const outcome of ['stored', 'older', 'failed']) backfills.inc({ pool, outcome }, 0)
      },
    }
    const windows = () => this.migrationWindows()
    new Gauge({
      name: 'shardline_router_migration_window_seconds',
      help: 'Seconds left of the migration window after a reload that changed key ownership, by pool (0 when none).',
      labelNames: ['pool'],
      registers,
      // Every worker and the primary keep the same window: with workers, report it once, not summed.
      aggregator: 'max',
      collect() {
        this.reset()
        for (const [pool, seconds] of windows()) this.set({ pool }, seconds)
      },
    })
    const regionApplied = new Counter({ name: 'shardline_router_region_applied_total', help: 'Peer regions\' writes (SL.REGION.APPLY) the owning shard answered without an error, by origin region and pool (applied, or older than what the shard holds).', labelNames: ['origin', 'pool'], registers })
    const regionErrors = new Counter({ name: 'shardline_router_region_errors_total', help: 'Peer regions\' commands not applied, by origin region and reason: retry (the owning shard unreachable or loading: sent again later), refused (for good), unauthorized.', labelNames: ['origin', 'reason'], registers })
    this.region = {
      applied: (origin, pool) => regionApplied.inc({ origin, pool }),
      error: (origin, reason) => regionErrors.inc({ origin, reason }),
    }
    perDestination('shardline_router_destination_connections', 'Open connections to the destination.', (d) => d.connected)
    perDestination('shardline_router_destination_in_flight', 'Commands sent to the destination awaiting a reply.', (d) => d.inFlight)
    perDestination('shardline_router_destination_queued', 'Commands waiting to be written to the destination.', (d) => d.queued)
    perDestination('shardline_router_destination_knocked_out', '1 while the destination is knocked out.', (d) => (d.health.knockedOut ? 1 : 0))
  }

  trackServer(port: 'data' | 'admin' | 'resp', server: Server): void {
    this.servers.set(port, server)
  }

  trackResponseBytes(read: () => number): void {
    this.responseBytesHeld = read
  }

  /** Seconds left of each pool's migration window, read at scrape time. */
  trackMigrationWindows(read: () => ReadonlyMap<string, number>): void {
    this.migrationWindows = read
  }

  /** One HTTP request on the data port that took elapsedMs. */
  observe(op: FrontOp, status: number, elapsedMs: number): void {
    record(this.requestCounts, `${op} ${status}`, { op, code: String(status) }, histogramFor(this.durationByOp, this.duration, op), elapsedMs)
  }

  /** One command on the RESP port: command is lower case and one of a known set (no label from client bytes). */
  observeResp(command: string, outcome: string, startedAt: number): void {
    record(this.respCounts, `${command} ${outcome}`, { command, outcome }, histogramFor(this.respDurationByCommand, this.respDuration, command), performance.now() - startedAt)
  }
}

type LabelCounts = Map<string, { labels: Record<string, string>; count: number }>

// Plain numbers, read at scrape time: prom-client hashes the label object on every inc.
function record(counts: LabelCounts, key: string, labels: Record<string, string>, histogram: { observe(seconds: number): void }, elapsedMs: number): void {
  const counted = counts.get(key)
  if (counted) counted.count++
  else counts.set(key, { labels, count: 1 })
  histogram.observe(elapsedMs / 1000)
}

/** A histogram's child for one label value, looked up once: labels() hashes on every call. */
function histogramFor<Name extends string>(children: Map<string, { observe(seconds: number): void }>, histogram: Histogram<Name>, value: string): { observe(seconds: number): void } {
  let child = children.get(value)
  if (!child) {
    child = histogram.labels(value)
    children.set(value, child)
  }
  return child
}
