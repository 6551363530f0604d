// Assembles one router: loads the config, builds the route tree, serves the front (HTTP, and RESP
// when configured) and admin ports, over TLS when configured (certificates reloaded as their files
// change), reloads on file change (directory watch, so ConfigMap symlink swaps are seen) and SIGHUP,
// swapping trees atomically; a bad or unreadable config is refused and the last good one serves.
import { watch, type FSWatcher } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { basename, dirname } from 'node:path'
import { HybridLogicalClock } from '../common/hlc.ts'
import type { Logger } from '../common/logger.ts'
import { ThrottledWarning } from '../common/throttled-warning.ts'
import { ServerTls } from '../common/tls-files.ts'
import { createRouterAdmin } from './admin.ts'
import { formatEndpoint, parseRouterConfig, readConfigText, type RouterConfig } from './config.ts'
import { connectionSettings, openFileLimit } from './connection-caps.ts'
import { createFront } from './front.ts'
import { RespFront } from './resp-front.ts'
import { RouterMetrics } from './metrics.ts'
import { ResponseBudget } from './response-budget.ts'
import { RouteTree } from './route-tree.ts'

/** What this process serves: a lone router does both; with workers, the primary serves admin. */
export interface RouterRoles {
  data: boolean
  admin: boolean
  metricsText?: () => Promise<string>
}

export interface RunningRouter {
  data: AddressInfo | null
  admin: AddressInfo | null
  /** The RESP front's address; null when listen.resp is not set or this process does not serve data. */
  resp: AddressInfo | null
  metrics: RouterMetrics
  tree(): RouteTree
  /** Re-reads the config file; resolves true when the new config now serves. */
  reload(reason: string): boolean
  close(graceMs?: number): Promise<void>
}

const OLD_TREE_GRACE_MS = 10_000

// What a reload reads: the file's text, or the error that says why it could not be read.
type ConfigRead = string | Error

// The limits read once, when the servers are created.
const LISTEN_TIME_LIMITS = ['maxConnections', 'maxAdminConnections', 'idleTimeoutMs', 'requestTimeoutMs', 'maxRespConnections', 'maxRespQueryBufferBytes'] as const

export async function startRouter(configFile: string, log: Logger, roles: RouterRoles = { data: true, admin: true }): Promise<RunningRouter> {
  const readConfig = (): ConfigRead => {
    try {
      return readConfigText(configFile)
    } catch (error) {
      return error as Error
    }
  }
  const startText = readConfigText(configFile)
  // The config the servers start with: its listen-time settings stay until a restart.
  const config = parseRouterConfig(startText, configFile)
  // What the last load or reload read (its text, or its error's message): the watcher reloads
  // only when that changes, so a file that stays missing is refused once, not on every event.
  let lastRead = startText
  let generation = 1
  let lastError: string | null = null
  let loadedAt = new Date().toISOString()
  let started = false
  let current: RouteTree
  const metrics = new RouterMetrics(() => current.destinations, () => generation, () => current.hotKeyRoutes.reduce((sum, route) => sum + route.heavyHitters().filter((h) => h.hot).length, 0))
  const onKnockout = (d: { id: { pool: string; shard: string; role: string } }) => metrics.knockouts.inc({ pool: d.id.pool, shard: d.id.shard, role: d.id.role })
  current = new RouteTree(config, generation, log, onKnockout, metrics)
  metrics.trackMigrationWindows(() => current.migrationWindowSeconds())
  const tree = () => current

  // A reload swaps the route tree, so per-request limits apply at once; listen addresses and the
  // connection settings are read when the servers start, and take effect on restart.
  const reload = (reason: string, read: ConfigRead = readConfig()): boolean => {
    lastRead = typeof read === 'string' ? read : read.message
    let next: RouterConfig
    let nextTree: RouteTree
    try {
      if (read instanceof Error) throw read
      next = parseRouterConfig(read, configFile)
      // Building the tree reads secrets (environment variables, files): one that is missing refuses the config.
      // The new tree opens a migration window where the owners changed, or carries the running one.
      nextTree = new RouteTree(next, generation + 1, log, onKnockout, metrics, current)
    } catch (error) {
      lastError = (error as Error).message
      metrics.reloads.inc({ outcome: 'failure' })
      log.error({ reason, error: lastError }, 'config refused; the last good config keeps serving')
      return false
    }
    const respAt = (listen: RouterConfig['listen']) => (listen.resp ? formatEndpoint(listen.resp) : 'off')
    if (formatEndpoint(next.listen.data) !== formatEndpoint(config.listen.data) || formatEndpoint(next.listen.admin) !== formatEndpoint(config.listen.admin) || respAt(next.listen) !== respAt(config.listen)) {
      log.warn('listen addresses changed in the config: they take effect on restart')
    }
    const changedAtRestart = LISTEN_TIME_LIMITS.filter((name) => next.limits[name] !== config.limits[name])
    if (changedAtRestart.length > 0) log.warn({ limits: changedAtRestart }, 'connection limits changed in the config: they take effect on restart')
    if (JSON.stringify(next.tls) !== JSON.stringify(config.tls)) log.warn('tls files changed in the config: they take effect on restart (the files themselves are reloaded when they change)')
    const previous = current
    generation++
    current = nextTree
    lastError = null
    loadedAt = new Date().toISOString()
    metrics.reloads.inc({ outcome: 'success' })
    log.info({ reason, generation }, 'config reloaded')
    // Requests that started on the old tree finish on it; then its connections close.
    void previous.close(OLD_TREE_GRACE_MS)
    return true
  }

  const clock = new HybridLogicalClock(Date.now, config.region?.id ?? null)
  const budget = new ResponseBudget()
  metrics.trackResponseBytes(() => budget.held)
  const serverTls = config.tls === null ? null : new ServerTls(config.tls, {
    reloaded: (file) => log.info({ file }, 'TLS certificate reloaded: new handshakes use it, open connections keep theirs'),
    refused: (file, error) => log.warn({ file, error: error.message }, 'TLS certificate files refused (a certificate and its key that do not match yet, or an unreadable file): the previous certificate keeps serving'),
  })
  const tlsPort = (port: 'data' | 'admin' | 'resp') => serverTls === null ? {} : { tls: serverTls, onTlsFailure: tlsFailures(port, log, metrics) }
  const connections = connectionSettings(config.limits, openFileLimit(), log, roles.data && config.listen.resp !== undefined)
  const front = roles.data
    ? createFront({ log, maxValueBytes: config.limits.maxValueBytes, connections: connections.data, onConnectionShed: (reason) => metrics.connectionsShed.inc({ port: 'data', reason }), accessLog: config.accessLog, clock, metrics, budget, tree, ...tlsPort('data') })
    : null
  const admin = roles.admin
    ? await createRouterAdmin({
      log,
      metrics,
      connections: connections.admin,
      onConnectionShed: (reason) => metrics.connectionsShed.inc({ port: 'admin', reason }),
      metricsText: roles.metricsText,
      tree,
      started: () => started,
      reloads: () => ({ generation, lastError, loadedAt }),
      ...tlsPort('admin'),
    })
    : null
  // Listen-time limits, like the other listeners'; a reload's maxRespPipeline and the value limits apply at once.
  const respFront = roles.data && config.listen.resp ? new RespFront({ log, clock, metrics, budget, limits: config.limits, tree, ...tlsPort('resp') }) : null
  await front?.listen({ host: config.listen.data.host, port: config.listen.data.port })
  // After the data port: a worker's listening events come in this order (cli/router-command.ts).
  const respAddress = respFront ? await respFront.listen(config.listen.resp!.host, config.listen.resp!.port) : null
  await admin?.listen({ host: config.listen.admin.host, port: config.listen.admin.port })
  if (front) metrics.trackServer('data', front.server)
  if (admin) metrics.trackServer('admin', admin.server)
  if (respFront) metrics.trackServer('resp', respFront.server)
  started = true

  // Watch the directory, not the file: a ConfigMap update swaps a symlink next to the file.
  let debounce: NodeJS.Timeout | null = null
  const watcher: FSWatcher = watch(dirname(configFile), () => {
    if (debounce) clearTimeout(debounce)
    debounce = setTimeout(() => {
      const read = readConfig()
      if ((typeof read === 'string' ? read : read.message) === lastRead) return
      reload(`${basename(configFile)} changed`, read)
    }, 100)
  })
  const onHangup = () => reload('SIGHUP')
  process.on('SIGHUP', onHangup)

  return {
    data: front ? (front.server.address() as AddressInfo) : null,
    admin: admin ? (admin.server.address() as AddressInfo) : null,
    resp: respAddress,
    metrics,
    tree,
    reload,
    async close(graceMs = 4000) {
      started = false
      watcher.close()
      if (debounce) clearTimeout(debounce)
      process.off('SIGHUP', onHangup)
      // Stop accepting, let in-flight requests finish, then close shard connections.
      await Promise.all([front?.close(), admin?.close(), respFront?.close(graceMs)])
      await current.close(graceMs)
      serverTls?.close()
    },
  }
}

// Each failed handshake is counted; the log says it once per burst (a scanner or a client without
// our CA would otherwise flood it).
function tlsFailures(port: 'data' | 'admin' | 'resp', log: Logger, metrics: RouterMetrics): (error: Error, remoteAddress: string | undefined) => void {
  const warning = new ThrottledWarning(log, `TLS handshake failed on the ${port} port (a client that does not trust our CA, an old TLS version, or not TLS at all)`)
  return (error, remoteAddress) => {
    metrics.tlsHandshakeFailures.inc({ port })
    warning.warn({ remote: remoteAddress, error: error.message })
  }
}
