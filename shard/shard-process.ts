// Assembles one shard: the store, its credentials and certificates, replication, its RESP server,
// the admin HTTP server and the expiry sweep; starts them, reports their addresses, and shuts them down gracefully.
import type { AddressInfo } from 'node:net'
import type { Logger } from '../common/logger.ts'
import { SecretSet } from '../common/secrets.ts'
import { ThrottledWarnings } from '../common/throttled-warning.ts'
import { ClientTls, ServerTls } from '../common/tls-files.ts'
import { ConfigError } from '../common/validate.ts'
import { VERSION } from '../common/version.ts'
import { createAdminServer } from './admin.ts'
import type { ShardConfig } from './config.ts'
import { renderInfo } from './info.ts'
import { newConnectionStats, ShardMetrics, type ShardPort } from './metrics.ts'
import { LOADING_ACTIVITY, Replication } from './replication.ts'
import { registerReplicationMetrics } from './replication-metrics.ts'
import { registerRegionMetrics } from './region-metrics.ts'
import { RegionShipper } from './region-shipper.ts'
import { RespServer } from './resp-server.ts'
import { ShardAuth } from './shard-auth.ts'
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
  const store = new Store({ maxMemory: config.maxMemory, policy: config.policy, tombstoneTtlMs: config.tombstoneTtlMs, maxVersionDriftMs: config.maxVersionDriftMs, regionId: config.region?.id })
  let dataPort = config.port
  // The metrics read the server's connection counts, and the server reports into the metrics.
  const connections = newConnectionStats()
  const metrics = new ShardMetrics(config.name, store, connections)
  const security = openSecurity(config, log, metrics)
  const { auth, serverTls } = security
  const replication = new Replication(config.replication, store, log, () => `${config.name}@${config.host}:${dataPort}`, config.limits.maxValueBytes, security.peerAccess)
  let closing = false
  registerReplicationMetrics(metrics.registry, replication)
  let shipping: ReturnType<typeof regionShipping>
  try {
    shipping = regionShipping(config, store, replication, log)
  } catch (error) {
    security.close()
    throw error
  }
  const { shippers } = shipping
  registerRegionMetrics(metrics.registry, shippers)
  const resp: RespServer = new RespServer({
    store,
    limits: config.limits,
    metrics,
    log,
    connections,
    info: (sections) => renderInfo({ name: config.name, version: VERSION, port: dataPort, startedAt, store, replication, region: config.region, shippers, connections, maxClients: config.limits.maxClients, totalCommands: () => resp.totalCommands }, sections),
    config: () => ({
      maxmemory: String(config.maxMemory),
      'maxmemory-policy': `allkeys-${config.policy}`,
      maxclients: String(config.limits.maxClients),
      'maxmemory-clients': String(config.limits.maxClientsMemory),
      'client-query-buffer-limit': String(config.limits.maxQueryBufferBytes),
      // Redis shows its password here; a shard never shows one.
      requirepass: '',
      masterauth: '',
    }),
    replication,
    auth,
    tls: serverTls,
    onTlsFailure: security.tlsFailed('resp'),
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
    region: config.region && { name: config.region.name, id: config.region.id, pool: config.region.pool, mode: config.region.mode, writerId: store.writerId, peers: shippers.map((shipper) => shipper.describe()) },
  })
  const notReadyBecause = () => closing ? 'shutting down' : replication.loading && LOADING_ACTIVITY[replication.loading]
  const admin = createAdminServer({ store, metrics, limits: config.limits, log, stats, notReadyBecause, auth, tls: serverTls, onTlsFailure: security.tlsFailed('admin') })
  let data: AddressInfo
  try {
    data = await resp.listen(config.port, config.host)
    await admin.listen({ port: config.adminPort, host: config.host })
  } catch (error) {
    await resp.close(0)
    shipping.close()
    security.close()
    throw error
  }
  dataPort = data.port
  const adminAddress = admin.server.address() as AddressInfo
  const sweeper = setInterval(() => store.sweep(config.sweep.batch), config.sweep.intervalMs)
  sweeper.unref()
  replication.start()
  for (const shipper of shippers) shipper.start()
  log.info({ name: config.name, data: `${data.address}:${data.port}`, admin: `${adminAddress.address}:${adminAddress.port}`, maxMemory: config.maxMemory, policy: config.policy, tls: serverTls !== null, auth: auth !== null }, 'shard started')
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
      shipping.close()
      await Promise.all([resp.close(graceMs), admin.close()])
      security.close()
    },
  }
}

/**
 * A shipper per peer region, for a primary or standalone shard whose pool crosses regions: each reads
 * the replication log, which such a shard keeps from its start.
 */
function regionShipping(config: ShardConfig, store: Store, replication: Replication, log: Logger) {
  const region = config.region
  const closers: Array<{ close(): void }> = []
  const close = () => {
    for (const closer of closers) closer.close()
  }
  if (region === null || region.mode === 'none' || region.peers.length === 0 || replication.role === 'replica') return { shippers: [], close }
  try {
    const replicationLog = replication.openLog()
    const shippers = region.peers.map((peer) => {
      const tls = peer.tls ? new ClientTls(peer.tls) : null
      if (tls) closers.push(tls)
      const password = peer.password === null ? null : new SecretSet(`region.peers[${peer.name}].password`, [peer.password], (message) => log.warn(message))
      if (password) closers.push(password)
      // A hash-only password can check a peer but not be sent to one: said at start, not per connect.
      password?.presented()
      const shipper = new RegionShipper({
        region,
        peer,
        log: replicationLog,
        store,
        logger: log,
        tls,
        password: password && (() => password.presented()),
        replyTimeoutMs: Math.max(config.replication.timeoutMs, 3 * region.helloMs),
      })
      closers.unshift(shipper)
      return shipper
    })
    replication.onLogged(() => {
      for (const shipper of shippers) shipper.logged()
    })
    return { shippers, close }
  } catch (error) {
    close()
    throw error
  }
}

/** A shard's credentials and certificates, and what its replication links present to their peers. */
function openSecurity(config: ShardConfig, log: Logger, metrics: ShardMetrics) {
  const closers: Array<{ close(): void }> = []
  const close = () => {
    for (const closer of closers) closer.close()
  }
  try {
    const auth = config.auth ? new ShardAuth(config.auth, log, metrics.authFailures) : null
    if (auth) closers.push(auth)
    const hasLinks = config.replication.replicaOf !== null || config.replication.replicas.length > 0
    // A hash-only internal password can check peers but not be sent to one: said at start, not per connect.
    if (auth && hasLinks) auth.presented()
    const serverTls = config.tls ? new ServerTls(config.tls, {
      reloaded: (what) => log.info({ file: what }, 'TLS certificate reloaded'),
      refused: (what, error) => log.warn({ file: what, error: error.message }, 'TLS certificate files changed but do not make a valid pair yet; the previous ones keep serving'),
    }) : null
    if (serverTls) closers.push(serverTls)
    let peerTls: ClientTls | null = null
    if (config.tls && hasLinks) {
      // Without peers settings, the CA that signs clients' certificates verifies peers, and this
      // shard's own certificate is its client certificate (peers with clientCa ask for one).
      const { cert, key, clientCa } = config.tls
      const peers = config.tls.peers ?? (clientCa ? { ca: clientCa, cert, key } : null)
      if (peers === null) throw new ConfigError('tls: replication links need a CA to verify their peers: set tls.peers.ca (or tls.clientCa)')
      peerTls = new ClientTls(peers)
      closers.push(peerTls)
    }
    const warnings = new ThrottledWarnings(log)
    return {
      auth,
      serverTls,
      peerAccess: { tls: peerTls, password: auth ? () => auth.presented() : null },
      tlsFailed: (port: ShardPort) => (error: Error) => {
        metrics.tlsHandshakeFailures[port]++
        warnings.warn(`TLS handshake failed on the ${port} port`, { error: error.message })
      },
      close,
    }
  } catch (error) {
    close()
    throw error
  }
}
