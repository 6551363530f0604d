// The text of the INFO command: Redis's section layout and field names where they apply
// (server, clients, memory, persistence, stats, replication, keyspace), so tools that read Redis's INFO read ours; plus region.
import type { ShardRegionConfig } from '../common/region.ts'
import type { RegionShipper } from './region-shipper.ts'
import type { Replication } from './replication.ts'
import type { Store } from './store.ts'
import type { ConnectionStats } from './metrics.ts'

export interface InfoSources {
  name: string
  version: string
  port: number
  startedAt: number
  store: Store
  replication: Replication
  region: ShardRegionConfig | null
  /** One per peer region this shard ships to (none for a replica, or a pool in mode none). */
  shippers: readonly RegionShipper[]
  connections: ConnectionStats
  maxClients: number
  totalCommands(): number
}

const SECTIONS = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'region', 'keyspace'] as const

export function renderInfo(sources: InfoSources, requested: string[]): string {
  const wanted = requested.length === 0 || requested.some((s) => s === 'all' || s === 'everything' || s === 'default')
    ? SECTIONS
    : SECTIONS.filter((section) => requested.includes(section))
  return wanted.filter((section) => section !== 'region' || sources.region !== null).map((section) => `# ${section[0].toUpperCase()}${section.slice(1)}\r\n${fields(sources, section).map(([k, v]) => `${k}:${v}\r\n`).join('')}`).join('\r\n')
}

function fields(sources: InfoSources, section: (typeof SECTIONS)[number]): Array<[string, string | number]> {
  const { store, connections } = sources
  const memory = process.memoryUsage()
  switch (section) {
    case 'server':
      return [
        // Clients such as ioredis read redis_version to pick features: we speak Redis 7's RESP2.
        ['redis_version', '7.0.0'],
        ['shardline_version', sources.version],
        ['shardline_name', sources.name],
        ['redis_mode', 'standalone'],
        ['process_id', process.pid],
        ['tcp_port', sources.port],
        ['uptime_in_seconds', Math.floor((Date.now() - sources.startedAt) / 1000)],
      ]
    case 'clients':
      return [['connected_clients', connections.current], ['maxclients', sources.maxClients], ['blocked_clients', 0]]
    case 'memory':
      // used_memory is what maxmemory bounds (an alert on used_memory / maxmemory means what it
      // does for Redis): the bytes charged for entries. What the process holds besides (client
      // buffers, the replication backlog, V8's heap, RSS) is reported beside it.
      return [
        ['used_memory', store.bytes],
        ['used_memory_dataset', store.bytes],
        ['used_memory_clients', connections.bufferedBytes],
        ['used_memory_repl_backlog', sources.replication.log?.bytes ?? 0],
        ['used_memory_vm', memory.heapUsed + memory.external],
        ['used_memory_rss', memory.rss],
        ['maxmemory', store.maxMemory],
        ['maxmemory_policy', `allkeys-${store.policy}`],
      ]
    case 'stats':
      return [
        ['total_connections_received', connections.total],
        ['rejected_connections', connections.dropped.max_clients],
        ['total_commands_processed', sources.totalCommands()],
        ['keyspace_hits', store.stats.hits],
        ['keyspace_misses', store.stats.misses],
        ['expired_keys', store.stats.expiredOnRead + store.stats.expiredBySweep],
        ['evicted_keys', store.stats.evictions],
        ['rejected_admissions', store.stats.admissionsRejected],
      ]
    case 'persistence':
      // loading:1 is how Redis clients (ioredis's ready check among them) learn to wait; the
      // reason is warm_up or catch_up.
      return [['loading', sources.replication.loading ? 1 : 0], ['shardline_loading_reason', sources.replication.loading ?? '']]
    case 'replication': {
      const { replication } = sources
      const upstream = replication.upstream
      const peers = replication.source?.peerStates() ?? []
      return [
        ['role', replication.role === 'replica' ? 'slave' : 'master'],
        ...(upstream ? [['master_host_port', upstream.options.peer], ['master_link_status', upstream.state === 'streaming' ? 'up' : 'down'], ['slave_repl_offset', upstream.appliedOffset]] as Array<[string, string | number]> : []),
        ['connected_slaves', peers.length],
        ...peers.map((peer, i): [string, string] => [`slave${i}`, `name=${peer.peer},state=${peer.state},offset=${peer.ackedOffset},lag=${peer.lag.seconds}`]),
        ['master_replid', replication.log?.replid ?? ''],
        ['master_repl_offset', replication.log?.headOffset ?? 0],
        ['repl_backlog_size', replication.log?.maxBytes ?? 0],
        ['repl_backlog_histlen', replication.log?.bytes ?? 0],
      ]
    }
    case 'region': {
      const region = sources.region!
      return [
        ['region_name', region.name],
        ['region_id', region.id],
        ['region_pool', region.pool],
        ['region_mode', region.mode],
        ['region_writer_id', store.writerId],
        ['region_peers', sources.shippers.length],
        ...sources.shippers.map((shipper, i): [string, string] => {
          const peer = shipper.describe()
          return [`region_peer${i}`, `name=${shipper.peer},connected=${shipper.connected ? 1 : 0},cursor=${peer.cursor},lag=${peer.lagSeconds},queue=${peer.queuedOps},incarnation=${peer.incarnation ?? ''},scanning=${peer.scan === null ? 0 : 1}`]
        }),
      ]
    }
    case 'keyspace':
      return store.size > 0 ? [['db0', `keys=${store.size},expires=${store.expiringKeys},avg_ttl=0`]] : []
  }
}
