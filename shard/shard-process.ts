// Assembles one shard: the store, replication, its RESP server, the admin HTTP server and the
// expiry sweep; starts them, reports their addresses, and shuts them down gracefully.
import type { AddressInfo } from 'node:net'
import type { Logger } from '../common/logger.ts'
import { VERSION } from '../common/version.ts'
import { createAdminServer } from './admin.ts'
import type { ShardConfig } from './config.ts'
import { renderInfo } from './info.ts'
import { newConnectionStats, ShardMetrics } from './metrics.ts'
import { LOADING_ACTIVITY, Replication } from './replication.ts'
import { registerReplicationMetrics } from './replication-metrics.ts'
import { RespServer } from './resp-server.ts'
import { Store } from './store.ts'

export interface RunningShard {
  config: ShardConfig
  store: Store
  replication: Replication
  data: AddressInfo
  admin: AddressInfo
  /** Stops accepting, answers what is in flight, and closes within graceMs. */
  close(graceMs?: number): Promise<void>
}

export async function startShard(config: ShardConfig, log: Logger): Promise<RunningShard> {
  const startedAt = Date.now()
  const store = new Store({ maxMemory: config.maxMemory, policy: config.policy, tombstoneTtlMs: config.tombstoneTtlMs, maxVersionDriftMs: config.maxVersionDriftMs })
  let dataPort = config.port
  const replication = new Replication(config.replication, store, log, () => `${config.name}@${config.host}:${dataPort}`, config.limits.maxValueBytes)
  let closing = false
  // The metrics read the server's connection counts, and the server reports into the metrics.
  const connections = newConnectionStats()
  const metrics = new ShardMetrics(config.name, store, connections)
  registerReplicationMetrics(metrics.registry, replication)
  const resp: RespServer = new RespServer({
    store,
    limits: config.limits,
    metrics,
    log,
    connections,
    info: (sections) => renderInfo({ name: config.name, version: VERSION, port: dataPort, startedAt, store, replication, connections, maxClients: config.limits.maxClients, totalCommands: () => resp.totalCommands }, sections),
    config: () => ({
      maxmemory: String(config.maxMemory),
      'maxmemory-policy': `allkeys-${config.policy}`,
      maxclients: String(config.limits.maxClients),
      'maxmemory-clients': String(config.limits.maxClientsMemory),
      'client-query-buffer-limit': String(config.limits.maxQueryBufferBytes),
    }),
    replication,
  })
  const stats = () => ({
    name: config.name,
    version: VERSION,
    uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
    policy: store.policy,
    items: store.size,
    tombstones: store.tombstoneCount,
    expiringItems: store.expiringKeys,
    storedBytes: store.bytes,
    maxMemory: store.maxMemory,
    ...store.stats,
    commandsProcessed: resp.totalCommands,
    connections: { current: connections.current, total: connections.total, dropped: { ...connections.dropped } },
    clientBufferBytes: connections.bufferedBytes,
    memory: process.memoryUsage(),
    replication: replication.stats(),
  })
  const notReadyBecause = () => closing ? 'shutting down' : replication.loading && LOADING_ACTIVITY[replication.loading]
  const admin = createAdminServer({ store, metrics, limits: config.limits, log, stats, notReadyBecause })
  const data = await resp.listen(config.port, config.host)
  dataPort = data.port
  await admin.listen({ port: config.adminPort, host: config.host })
  const adminAddress = admin.server.address() as AddressInfo
  const sweeper = setInterval(() => store.sweep(config.sweep.batch), config.sweep.intervalMs)
  sweeper.unref()
  replication.start()
  log.info({ name: config.name, data: `${data.address}:${data.port}`, admin: `${adminAddress.address}:${adminAddress.port}`, maxMemory: config.maxMemory, policy: config.policy }, 'shard started')
  return {
    config,
    store,
    replication,
    data,
    admin: adminAddress,
    async close(graceMs = 4000) {
      closing = true
      clearInterval(sweeper)
      replication.close()
      await Promise.all([resp.close(graceMs), admin.close()])
    },
  }
}
