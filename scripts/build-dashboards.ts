// scripts/build-dashboards.ts: the Grafana dashboards helm/shardline ships (dashboards/*.json), defined
// here as panels and PromQL and written as JSON. `npx node scripts/build-dashboards.ts` rewrites them.
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const DASHBOARD_DIR = fileURLToPath(new URL('../helm/shardline/dashboards/', import.meta.url))

interface Target {
  expr: string
  legend: string
}
interface PanelSpec {
  title: string
  description: string
  unit: string
  targets: Target[]
  kind?: 'timeseries' | 'stat'
  /** Grid width (24 = the whole row). */
  width?: number
}
/** A row heading: the panels after it, on a new line, belong to it. */
interface RowSpec {
  row: string
}
interface DashboardSpec {
  uid: string
  file: string
  title: string
  description: string
  panels: Array<PanelSpec | RowSpec>
}

const RATE = '$__rate_interval'
const rate = (metric: string, by = '', selector = '') => `sum${by ? ` by (${by})` : ''} (rate(${metric}${selector}[${RATE}]))`
const hitRatio = (by = '') => `${rate('shardline_shard_keyspace_hits_total', by)} / (${rate('shardline_shard_keyspace_hits_total', by)} + ${rate('shardline_shard_keyspace_misses_total', by)})`
const quantile = (q: number, histogram: string, by: string) => `histogram_quantile(${q}, sum by (${by}) (rate(${histogram}_bucket[${RATE}])))`
/** Router processes' own series: routers are the targets that export the config generation. */
const routersOnly = (expr: string) => `${expr} and on (instance, job) shardline_router_config_generation`
/**
 * 0 rather than no data for series that are often absent: the rebalance Job's (it serves metrics only
 * while it runs) and the routers' security counters (none on a router without tenants or TLS).
 */
const zeroWhenAbsent = (expr: string) => `${expr} or on () vector(0)`
/** Multi-region series exist only where a region is configured (shards shipping, routers applying): 0 elsewhere. */
const regionRate = (metric: string, by: string) => zeroWhenAbsent(rate(metric, by))

export const DASHBOARDS: DashboardSpec[] = [
  {
    uid: 'shardline-overview',
    file: 'overview.json',
    title: 'shardline / overview',
    description: 'The cache as its clients see it: requests, hit ratio, latency and errors at the routers, fill and health at the shards.',
    panels: [
      { title: 'Requests/s', kind: 'stat', width: 6, unit: 'reqps', description: 'HTTP requests on the routers\' data ports.', targets: [{ expr: rate('shardline_router_requests_total'), legend: 'requests/s' }] },
      { title: 'Hit ratio', kind: 'stat', width: 6, unit: 'percentunit', description: 'Reads that found a live key, over all reads, at the shards (the seed\'s hit/miss ratio).', targets: [{ expr: hitRatio(), legend: 'hit ratio' }] },
      { title: 'Cache fill', kind: 'stat', width: 6, unit: 'percentunit', description: 'Bytes charged over the shards\' budgets. Near 100% the cache evicts to take writes (normal for a cache: watch evictions and the hit ratio).', targets: [{ expr: 'sum(shardline_shard_stored_bytes) / sum(shardline_shard_memory_budget_bytes)', legend: 'fill' }] },
      { title: 'Destinations knocked out', kind: 'stat', width: 6, unit: 'none', description: 'Shard processes the routers have knocked out (TKO) for failing health checks. Above 0 a shard runs on its replicas; every copy out = 503s for its keys.', targets: [{ expr: 'sum(max by (pool, shard, role, address) (shardline_router_destination_knocked_out))', legend: 'knocked out' }] },
      { title: 'Requests/s by op', unit: 'reqps', description: 'get, set, delete and batch requests at the routers.', targets: [{ expr: rate('shardline_router_requests_total', 'op'), legend: '{{op}}' }] },
      { title: 'Hits and misses/s', unit: 'ops', description: 'Shard reads that found a key (hits) and that did not (misses).', targets: [{ expr: rate('shardline_shard_keyspace_hits_total'), legend: 'hits' }, { expr: rate('shardline_shard_keyspace_misses_total'), legend: 'misses' }] },
      { title: 'Latency p50 / p95 / p99', unit: 's', description: 'Router request latency, parse to reply, all ops (the seed\'s target: < 10 ms).', targets: [0.5, 0.95, 0.99].map((q) => ({ expr: quantile(q, 'shardline_router_request_duration_seconds', 'le'), legend: `p${q * 100}` })) },
      { title: 'Latency p99 by op', unit: 's', description: 'Router request latency p99 per op.', targets: [{ expr: quantile(0.99, 'shardline_router_request_duration_seconds', 'le, op'), legend: '{{op}}' }] },
      { title: 'Errors/s by code', unit: 'reqps', description: 'Responses other than 2xx and 404 (a miss): 400 bad input, 413 too large, 503 no healthy destination or queue full, 504 shard timeout, 502 shard error.', targets: [{ expr: rate('shardline_router_requests_total', 'code', '{code!~"2..|404"}'), legend: '{{code}}' }] },
      { title: 'Responses/s by code', unit: 'reqps', description: 'Every response by HTTP status.', targets: [{ expr: rate('shardline_router_requests_total', 'code'), legend: '{{code}}' }] },
    ],
  },
  {
    uid: 'shardline-shards',
    file: 'shards.json',
    title: 'shardline / shards',
    description: 'Each shard process: memory against its budget, items, evictions, expirations, commands. (Replication lag comes with replication.)',
    panels: [
      {
        title: 'Memory per shard: RSS, budget, charged bytes',
        width: 24,
        unit: 'bytes',
        description: 'RSS of each shard process (the memory per node), its budget (--max-memory) and the bytes charged against it. RSS stays within budget + 160 MiB: the pod\'s memory request.',
        targets: [
          { expr: 'process_resident_memory_bytes{shard!=""}', legend: '{{shard}} RSS' },
          { expr: 'shardline_shard_memory_budget_bytes', legend: '{{shard}} budget' },
          { expr: 'shardline_shard_stored_bytes', legend: '{{shard}} charged' },
        ],
      },
      { title: 'RSS above budget', unit: 'bytes', description: 'RSS minus the budget: the process\'s base. Measured within 160 MiB; well above it, the pod nears its memory limit.', targets: [{ expr: 'process_resident_memory_bytes{shard!=""} - on (instance, job, shard) shardline_shard_memory_budget_bytes', legend: '{{shard}}' }] },
      { title: 'Budget used', unit: 'percentunit', description: 'Charged bytes over the budget per shard.', targets: [{ expr: 'shardline_shard_stored_bytes / shardline_shard_memory_budget_bytes', legend: '{{shard}}' }] },
      { title: 'Items', unit: 'short', description: 'Live entries per shard.', targets: [{ expr: 'shardline_shard_items', legend: '{{shard}}' }] },
      { title: 'Evictions/s', unit: 'ops', description: 'Entries evicted to stay within the budget. Steady evictions with a falling hit ratio: the cache is too small (shardline plan).', targets: [{ expr: rate('shardline_shard_evictions_total', 'shard'), legend: '{{shard}}' }] },
      { title: 'Expirations/s', unit: 'ops', description: 'Entries removed because their TTL passed: found expired on a read, or by the background sweep.', targets: [{ expr: rate('shardline_shard_expirations_total', 'shard, reason'), legend: '{{shard}} {{reason}}' }] },
      { title: 'Hit ratio per shard', unit: 'percentunit', description: 'Hits over reads per shard: one shard far below the rest holds keys that are written and never read back, or misses a failover\'s data.', targets: [{ expr: hitRatio('shard'), legend: '{{shard}}' }] },
      { title: 'Commands/s', unit: 'ops', description: 'RESP commands the shards processed, by command.', targets: [{ expr: rate('shardline_shard_commands_total', 'command'), legend: '{{command}}' }] },
      { title: 'Command errors/s', unit: 'ops', description: 'Commands answered with an error (unknown command, wrong arity, over-limit key or value), by shard and command.', targets: [{ expr: rate('shardline_shard_commands_total', 'shard, command', '{outcome="error"}'), legend: '{{shard}} {{command}}' }] },
      { title: 'Command latency p99', unit: 's', description: 'Time to execute a command inside the shard, p99 by command.', targets: [{ expr: quantile(0.99, 'shardline_shard_command_duration_seconds', 'le, command'), legend: '{{command}}' }] },
      { title: 'Connections', unit: 'short', description: 'Open RESP connections per shard (routers keep a few each).', targets: [{ expr: 'shardline_shard_connections', legend: '{{shard}}' }] },
      { title: 'Connections dropped/s', unit: 'ops', description: 'Connections the shard closed: a malformed frame (protocol_error), an unfinished request past its limit (query_buffer), all client buffers together past their budget (clients_memory), a client not reading or not finishing its request (slow_client), idle, or past maxClients (max_clients).', targets: [{ expr: rate('shardline_shard_connections_dropped_total', 'shard, reason'), legend: '{{shard}} {{reason}}' }] },
      { title: 'Admissions rejected/s', unit: 'ops', description: 'New entries the lfu policy refused as rarer than the eviction victim (0 with lru and fifo).', targets: [{ expr: rate('shardline_shard_admissions_rejected_total', 'shard'), legend: '{{shard}}' }] },
      { title: 'Event loop lag p99', unit: 's', description: 'How late the shard\'s event loop runs: every command waits this long.', targets: [{ expr: 'nodejs_eventloop_lag_p99_seconds{shard!=""}', legend: '{{shard}}' }] },
    ],
  },
  {
    uid: 'shardline-routers',
    file: 'routers.json',
    title: 'shardline / routers',
    description: 'The routers: connection-pool saturation and health per shard destination, knock-outs, config reloads, the processes, and security: auth failures, traffic and rate limiting by tenant, TLS handshake failures.',
    panels: [
      { title: 'Pool saturation: queued commands', unit: 'short', description: 'Commands waiting to be written to each destination (the worst router). At connections.maxQueue (8192) the router answers 503 queue_full.', targets: [{ expr: 'max by (pool, shard, role) (shardline_router_destination_queued)', legend: '{{pool}}/{{shard}} {{role}}' }] },
      { title: 'Pool saturation: in flight', unit: 'short', description: 'Commands sent to each destination awaiting a reply, over all routers.', targets: [{ expr: 'sum by (pool, shard, role) (shardline_router_destination_in_flight)', legend: '{{pool}}/{{shard}} {{role}}' }] },
      { title: 'Open connections per destination', unit: 'short', description: 'Connections the routers hold to each shard process (connections.perDestination per router when healthy).', targets: [{ expr: 'sum by (pool, shard, role) (shardline_router_destination_connections)', legend: '{{pool}}/{{shard}} {{role}}' }] },
      { title: 'Knocked-out destinations', unit: 'none', description: '1 while a destination is knocked out (TKO) by any router; its shard is served by the next copy.', targets: [{ expr: 'max by (pool, shard, role, address) (shardline_router_destination_knocked_out)', legend: '{{pool}}/{{shard}} {{role}} {{address}}' }] },
      { title: 'Knock-outs/s', unit: 'ops', description: 'Destinations knocked out by failed heartbeats or connections, by pool, shard and role.', targets: [{ expr: rate('shardline_router_knockouts_total', 'pool, shard, role'), legend: '{{pool}}/{{shard}} {{role}}' }] },
      { title: 'Config reloads', unit: 'short', description: 'Config reloads in the time range, by outcome. A failure means a bad config was refused and the last good one still serves (/admin/config shows lastError).', targets: [{ expr: 'sum by (outcome) (increase(shardline_router_config_reloads_total[$__range]))', legend: '{{outcome}}' }] },
      { title: 'Config generation per router', unit: 'none', description: 'Configs each router has loaded. Routers at different generations: one has not picked up a change yet.', targets: [{ expr: 'shardline_router_config_generation', legend: '{{instance}}' }] },
      { title: 'Requests/s per router', unit: 'reqps', description: 'Requests each router serves: uneven load means the Service is not spreading connections (long-lived keep-alive clients).', targets: [{ expr: rate('shardline_router_requests_total', 'instance'), legend: '{{instance}}' }] },
      { title: 'Router memory (RSS)', unit: 'bytes', description: 'Resident memory of each router process.', targets: [{ expr: routersOnly('process_resident_memory_bytes'), legend: '{{instance}}' }] },
      { title: 'Router CPU', unit: 'percentunit', description: 'Cores each router process uses (the autoscaler scales on CPU).', targets: [{ expr: routersOnly(`rate(process_cpu_seconds_total[${RATE}])`), legend: '{{instance}}' }] },
      { title: 'Router event loop lag p99', unit: 's', description: 'How late each router\'s event loop runs: every request waits this long.', targets: [{ expr: routersOnly('nodejs_eventloop_lag_p99_seconds'), legend: '{{instance}}' }] },
      { title: 'Auth failures/s by reason', unit: 'reqps', description: 'Requests refused for their credentials: missing_token and bad_token (401), forbidden (403, a permission the tenant lacks). A rise of bad_token after a rotation: a client still sends the old token.', targets: [{ expr: zeroWhenAbsent(rate('shardline_router_auth_failures_total', 'reason')), legend: '{{reason}}' }] },
      { title: 'Requests/s by tenant', unit: 'reqps', description: 'Requests each tenant\'s tokens authenticated, over all routers (HTTP requests and RESP commands; a batch counts once).', targets: [{ expr: zeroWhenAbsent(rate('shardline_router_tenant_requests_total', 'tenant')), legend: '{{tenant}}' }] },
      { title: 'Rate-limited/s by tenant', unit: 'reqps', description: 'Requests past their tenant\'s rate limit: enforce refused them with 429, shadow only counted them. The limit is per router: the cluster-wide rate is the limit x routers.', targets: [{ expr: zeroWhenAbsent(rate('shardline_router_rate_limited_total', 'tenant, mode')), legend: '{{tenant}} {{mode}}' }] },
      { title: 'TLS handshake failures/s', unit: 'ops', description: 'Handshakes that failed on the routers\' data, admin and RESP ports: clients that do not trust the CA, speak plain text to a TLS port, or offer only old TLS versions.', targets: [{ expr: zeroWhenAbsent(rate('shardline_router_tls_handshake_failures_total', 'port')), legend: '{{port}}' }] },
    ],
  },
  {
    uid: 'shardline-hot-keys',
    file: 'hot-keys.json',
    title: 'shardline / hot keys',
    description: 'Hot keys: keys each router reads often enough to spread over copies on several shards, and hot counters whose increments it batches.',
    panels: [
      { title: 'Hot keys per router', unit: 'short', description: 'Keys each router currently treats as hot (reads spread over copies). /admin/hotkeys on a router lists them with their rates.', targets: [{ expr: 'shardline_router_hot_keys', legend: '{{instance}}' }] },
      { title: 'Hot keys (all routers, max)', kind: 'stat', unit: 'short', description: 'The most hot keys any router holds now.', targets: [{ expr: 'max(shardline_router_hot_keys)', legend: 'hot keys' }] },
      { title: 'Copy reads/s by outcome', unit: 'ops', description: 'Reads served from hot-key copies: hit, miss (the copy was filled from the base key), stale (older than this router\'s own write, so read from the base key).', targets: [{ expr: rate('shardline_router_hot_copy_reads_total', 'outcome'), legend: '{{outcome}}' }] },
      { title: 'Copy hit ratio', unit: 'percentunit', description: 'Copy reads that hit. Low: copies expire (copyTtlMs) before they are read again.', targets: [{ expr: `${rate('shardline_router_hot_copy_reads_total', '', '{outcome="hit"}')} / ${rate('shardline_router_hot_copy_reads_total')}`, legend: 'copy hit ratio' }] },
      { title: 'Copy fills/s', unit: 'ops', description: 'Hot-key copies written from their base key.', targets: [{ expr: rate('shardline_router_hot_copy_fills_total'), legend: 'fills/s' }] },
      { title: 'Hot counter batch size (mean)', unit: 'short', description: 'Increments carried by one write to a hot counter\'s sub-counter (higher = more batching).', targets: [{ expr: `${rate('shardline_router_counter_batch_size_sum')} / ${rate('shardline_router_counter_batch_size_count')}`, legend: 'increments per write' }] },
    ],
  },
  {
    uid: 'shardline-replication',
    file: 'replication.json',
    title: 'shardline / replication',
    description: 'Primary to replica replication: how far each replica is behind (the window of acknowledged writes a primary\'s death would lose), resyncs, dropped peers, warm-ups and catch-ups; and between regions: how far each peer region is behind, what is shipped, resyncs, refusals.',
    panels: [
      { title: 'Worst replication lag', kind: 'stat', width: 8, unit: 's', description: 'The oldest write any primary holds that its replica has not acknowledged. Writes inside this window are lost if that primary dies now.', targets: [{ expr: 'max(shardline_replication_lag_seconds{link="to_replica"})', legend: 'lag' }] },
      { title: 'Replicas streaming', kind: 'stat', width: 8, unit: 'short', description: 'Replicas connected to a primary and streaming its log (one per replica when all is well).', targets: [{ expr: 'count(shardline_replication_lag_seconds{link="to_replica"})', legend: 'streaming' }] },
      { title: 'Primaries loading', kind: 'stat', width: 8, unit: 'short', description: 'Primaries answering -LOADING while routers send their keys to the replica: restarted ones loading a replica\'s snapshot (warm_up), or ones back from a hang applying what their replica took (catch_up).', targets: [{ expr: 'sum(shardline_replication_loading)', legend: 'loading' }] },
      { title: 'Replication lag (seconds)', unit: 's', description: 'Per primary and replica: age of the oldest write the replica has not acknowledged, measured at the primary from the replica\'s acknowledgements.', targets: [{ expr: 'max by (shard, peer) (shardline_replication_lag_seconds{link="to_replica"})', legend: '{{shard}} -> {{peer}}' }] },
      { title: 'Replication lag (operations)', unit: 'short', description: 'Writes in the primary\'s log the replica has not acknowledged.', targets: [{ expr: 'max by (shard, peer) (shardline_replication_lag_operations{link="to_replica"})', legend: '{{shard}} -> {{peer}}' }] },
      { title: 'Replication lag (bytes)', unit: 'bytes', description: 'Bytes of log the replica has not acknowledged. Near the backlog size, a disconnect costs a full resync.', targets: [{ expr: 'max by (shard, peer) (shardline_replication_lag_bytes{link="to_replica"})', legend: '{{shard}} -> {{peer}}' }] },
      { title: 'Backlog held', unit: 'bytes', description: 'Bytes of replication log each shard keeps for peers to resume from (replication.backlogBytes at most).', targets: [{ expr: 'shardline_replication_backlog_bytes', legend: '{{shard}}' }] },
      { title: 'Log offset rate', unit: 'ops', description: 'Writes appended to each shard\'s replication log per second (a replica\'s log holds only writes it took during a failover).', targets: [{ expr: `sum by (shard) (rate(shardline_replication_offset[${RATE}]))`, legend: '{{shard}}' }] },
      { title: 'Resyncs', unit: 'short', description: 'Syncs served in the time range: partial (resumed from the backlog) or full (a snapshot). Full resyncs beyond restarts: raise replication.backlogBytes.', targets: [{ expr: 'sum by (shard, kind) (increase(shardline_replication_syncs_total{side="served"}[$__range]))', legend: '{{shard}} {{kind}}' }] },
      { title: 'Catch-ups', unit: 'short', description: 'Primaries back from a stall or a lost write-back link that caught up with their replicas before serving (caught_up), or gave up after replication.catchUp.timeoutMs and served what they had (gave_up: reads of what the replica took may be stale until it flows back).', targets: [{ expr: 'sum by (shard, outcome) (increase(shardline_replication_catch_ups_total[$__range]))', legend: '{{shard}} {{outcome}}' }] },
      { title: 'Peers dropped', unit: 'short', description: 'Replication peers dropped in the time range, by reason: garbage (not the protocol), too_far_behind (the backlog or peer buffer overflowed), timeout (no acknowledgement).', targets: [{ expr: 'sum by (shard, reason) (increase(shardline_replication_peers_dropped_total[$__range]))', legend: '{{shard}} {{reason}}' }] },
      // Multi-region: the primary shards ship their writes to each peer region's routers (README "Multi-region").
      { row: 'Regions' },
      { title: 'Worst region lag', kind: 'stat', width: 8, unit: 's', description: 'The oldest write any shard of this region has not had acknowledged by a peer region: how stale that region\'s reads of it may be. 0 with no region configured.', targets: [{ expr: zeroWhenAbsent('max(shardline_region_lag_seconds)'), legend: 'lag' }] },
      { title: 'Region links down', kind: 'stat', width: 8, unit: 'short', description: 'Shipping links (one per shard and peer region) not connected to the peer\'s routers: a partition, or the peer\'s routers down. Their writes queue in the log meanwhile.', targets: [{ expr: zeroWhenAbsent('count(shardline_region_connected == 0)'), legend: 'down' }] },
      { title: 'Region queue', kind: 'stat', width: 8, unit: 'short', description: 'Writes in this region\'s logs not yet acknowledged by a peer region, over all shards and peers.', targets: [{ expr: zeroWhenAbsent('sum(shardline_region_queue_ops)'), legend: 'ops' }] },
      { title: 'Region lag by peer', unit: 's', description: 'Per peer region, the oldest write not acknowledged by it, the worst shard (during a full scan: the oldest write since the scan began).', targets: [{ expr: zeroWhenAbsent('max by (peer) (shardline_region_lag_seconds)'), legend: '{{peer}}' }] },
      { title: 'Region queue by peer', unit: 'short', description: 'Writes in the logs not yet acknowledged by each peer region, over all shards, and those of them parked because a shard there answered TRYAGAIN. Near the backlog, a longer cut ends in a full scan.', targets: [{ expr: zeroWhenAbsent('sum by (peer) (shardline_region_queue_ops)'), legend: '{{peer}}' }, { expr: zeroWhenAbsent('sum by (peer) (shardline_region_parked_ops)'), legend: '{{peer}} parked' }] },
      { title: 'Shipped ops/s by peer', unit: 'ops', description: 'Writes (and scanned entries) sent to each peer region\'s routers and acknowledged.', targets: [{ expr: regionRate('shardline_region_shipped_ops_total', 'peer'), legend: '{{peer}}' }] },
      { title: 'Shipped bytes/s by peer', unit: 'Bps', description: 'Bytes sent to each peer region: the cross-region traffic this cache adds.', targets: [{ expr: regionRate('shardline_region_shipped_bytes_total', 'peer'), legend: '{{peer}}' }] },
      { title: 'Region resyncs', unit: 'short', description: 'Resyncs with each peer region in the time range: partial (a link back, resumed from the log) or full (a scan of every key: at start, after the peer\'s shard restarted, or after falling out of the backlog).', targets: [{ expr: zeroWhenAbsent('sum by (peer, kind) (increase(shardline_region_resyncs_total[$__range]))'), legend: '{{peer}} {{kind}}' }] },
      { title: 'Shard links connected by peer', unit: 'short', description: 'Shipping links connected to each peer region\'s routers (one per primary shard when all is well).', targets: [{ expr: zeroWhenAbsent('sum by (peer) (shardline_region_connected)'), legend: '{{peer}}' }] },
      { title: 'Refused by peers/s', unit: 'ops', description: 'Writes a peer region refused for good (not a retry): skipped, so that region may miss them. A wrong pool mode or a version too far ahead of its clock; the shards log each reason.', targets: [{ expr: regionRate('shardline_region_rejected_total', 'peer'), legend: '{{peer}}' }] },
      { title: 'Applied from other regions/s', unit: 'ops', description: 'At this region\'s routers: writes from each origin region applied to each pool.', targets: [{ expr: regionRate('shardline_router_region_applied_total', 'origin, pool'), legend: '{{origin}} {{pool}}' }] },
      { title: 'Region apply errors/s', unit: 'ops', description: 'At this region\'s routers: writes from other regions not applied, by reason: retry (the owning shard unreachable or loading: the origin resends), refused (for good), unauthorized (a wrong or missing region password).', targets: [{ expr: regionRate('shardline_router_region_errors_total', 'origin, reason'), legend: '{{origin}} {{reason}}' }] },
    ],
  },
  {
    uid: 'shardline-migration',
    file: 'migration.json',
    title: 'shardline / migration',
    description: 'A pool changing shape (scale out, scale in, drain): the routers\' warm-up reads through to previous owners during the migration window, and the rebalance Job moving keys to their owners.',
    panels: [
      { title: 'Migration window left', kind: 'stat', width: 6, unit: 's', description: 'Seconds left of the longest migration window on any router (router.config.migration.windowMs after a reload that changed key ownership); 0: no migration.', targets: [{ expr: 'max(shardline_router_migration_window_seconds)', legend: 'window left' }] },
      { title: 'Warm-up hits/s', kind: 'stat', width: 6, unit: 'ops', description: 'Reads that missed on the new owner and were found on a previous one (served and back-filled). Falls toward 0 as the new owners fill.', targets: [{ expr: rate('shardline_router_warmup_reads_total', '', '{outcome="hit"}'), legend: 'hits/s' }] },
      { title: 'Keys moved/s', kind: 'stat', width: 6, unit: 'ops', description: 'Keys the rebalance Job moves to their owners (0 while no Job runs).', targets: [{ expr: zeroWhenAbsent(rate('shardline_rebalance_keys_total', '', '{outcome="moved"}')), legend: 'moved/s' }] },
      { title: 'Shards pending', kind: 'stat', width: 6, unit: 'short', description: 'Shards the rebalance Job has still to scan (0 while no Job runs: with the Job done, every key is on its owner).', targets: [{ expr: zeroWhenAbsent('sum(shardline_rebalance_shards{state="pending"})'), legend: 'pending' }] },
      { title: 'Warm-up reads/s by pool', unit: 'ops', description: 'Reads that missed on the new owner during the window: hit (found on a previous owner: the miss a client did not see) or miss (in neither: a real miss).', targets: [{ expr: rate('shardline_router_warmup_reads_total', 'pool, outcome'), legend: '{{pool}} {{outcome}}' }] },
      { title: 'Back-fills/s by pool', unit: 'ops', description: 'Warm-up hits written into the new owner: stored, older (the new owner had as new or newer: a write won, as it must), failed (the read was still served; the key stays on its previous owner for the rebalance Job).', targets: [{ expr: rate('shardline_router_warmup_backfills_total', 'pool, outcome'), legend: '{{pool}} {{outcome}}' }] },
      { title: 'Migration window left by pool', unit: 's', description: 'Seconds left of each pool\'s migration window, the longest over the routers. Routers far apart: one reloaded later (see the routers dashboard\'s config generation).', targets: [{ expr: 'max by (pool) (shardline_router_migration_window_seconds)', legend: '{{pool}}' }] },
      { title: 'Rebalance keys/s by outcome', unit: 'ops', description: 'The rebalance Job: keys scanned, moved, skipped_older (the owner already had as new or newer), removed (the old copy, once moved), failed (a rerun of the Job retries them), and its --rate limit.', targets: [{ expr: zeroWhenAbsent(rate('shardline_rebalance_keys_total', 'outcome')), legend: '{{outcome}}' }, { expr: zeroWhenAbsent('max(shardline_rebalance_rate_limit_keys_per_second)'), legend: 'rate limit' }] },
      { title: 'Rebalance shards by state', unit: 'short', description: 'Shards the Job has still to scan (pending) and has finished (done).', targets: [{ expr: zeroWhenAbsent('sum by (state) (shardline_rebalance_shards)'), legend: '{{state}}' }] },
      { title: 'Items per shard', unit: 'short', description: 'Live entries per shard process: a new shard fills, a draining shard empties to 0 (then it can be removed).', targets: [{ expr: 'sum by (shard) (shardline_shard_items)', legend: '{{shard}}' }] },
      { title: 'Hit ratio during the move', unit: 'percentunit', description: 'Reads that found a live key at the shards: with warm-up it stays near its steady value through a resize.', targets: [{ expr: hitRatio(), legend: 'hit ratio' }] },
      { title: 'Latency p99 during the move', unit: 's', description: 'Router request latency p99: the rebalance Job\'s --rate is too high if it climbs while the Job runs.', targets: [{ expr: quantile(0.99, 'shardline_router_request_duration_seconds', 'le'), legend: 'p99' }] },
    ],
  },
]

/** A dashboard as Grafana's JSON model (schemaVersion 39), with a Prometheus data source variable. */
export function dashboardJson(spec: DashboardSpec): Record<string, unknown> {
  const datasource = { type: 'prometheus', uid: '${datasource}' }
  let x = 0
  let y = 0
  const panels = spec.panels.map((panel, index) => {
    if ('row' in panel) {
      if (x > 0) y += 8
      x = 0
      y += 1
      return { id: index + 1, type: 'row', title: panel.row, collapsed: false, gridPos: { x: 0, y: y - 1, w: 24, h: 1 }, panels: [] }
    }
    const w = panel.width ?? 12
    const h = panel.kind === 'stat' ? 4 : 8
    if (x + w > 24) {
      x = 0
      y += 8
    }
    const gridPos = { x, y, w, h }
    x += w
    if (x >= 24) {
      x = 0
      y += h
    }
    return {
      id: index + 1,
      type: panel.kind ?? 'timeseries',
      title: panel.title,
      description: panel.description,
      datasource,
      gridPos,
      fieldConfig: { defaults: { unit: panel.unit }, overrides: [] },
      options: panel.kind === 'stat'
        ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area' }
        : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
      targets: panel.targets.map((target, t) => ({ refId: String.fromCharCode(65 + t), datasource, expr: target.expr, legendFormat: target.legend, range: true })),
    }
  })
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ['shardline'],
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    timezone: 'browser',
    graphTooltip: 1,
    annotations: { list: [] },
    links: [],
    templating: {
      list: [{ name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1, options: [] }],
    },
    panels,
  }
}

export function renderDashboards(): Map<string, string> {
  return new Map(DASHBOARDS.map((spec) => [spec.file, `${JSON.stringify(dashboardJson(spec), null, 2)}\n`]))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, text] of renderDashboards()) {
    writeFileSync(`${DASHBOARD_DIR}${file}`, text)
    console.log(`wrote ${DASHBOARD_DIR}${file}`)
  }
}
