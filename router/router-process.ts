// Assembles one router: loads the config, builds the route tree, serves the front and admin
// ports, reloads on file change (directory watch, so ConfigMap symlink swaps are seen) and
// SIGHUP, swapping trees atomically; a bad config is refused and the last good one serves.
import { watch, readFileSync, type FSWatcher } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { basename, dirname } from 'node:path'
import { HybridLogicalClock } from '../common/hlc.ts'
import type { Logger } from '../common/logger.ts'
import { createRouterAdmin } from './admin.ts'
import { formatEndpoint, loadRouterConfig, type RouterConfig } from './config.ts'
import { createFront } from './front.ts'
import { RouterMetrics } from './metrics.ts'
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
  metrics: RouterMetrics
  tree(): RouteTree
  /** Re-reads the config file; resolves true when the new config now serves. */
  reload(reason: string): boolean
  close(graceMs?: number): Promise<void>
}

const OLD_TREE_GRACE_MS = 10_000

export async function startRouter(configFile: string, log: Logger, roles: RouterRoles = { data: true, admin: true }): Promise<RunningRouter> {
  let config: RouterConfig = loadRouterConfig(configFile)
  let loadedText = readFileSync(configFile, 'utf8')
  let generation = 1
  let lastError: string | null = null
  let loadedAt = new Date().toISOString()
  let started = false
  let current: RouteTree
  const metrics = new RouterMetrics(() => current.destinations, () => generation, () => current.hotKeyRoutes.reduce((sum, route) => sum + route.heavyHitters().filter((h) => h.hot).length, 0))
  const onKnockout = (d: { id: { pool: string; shard: string; role: string } }) => metrics.knockouts.inc({ pool: d.id.pool, shard: d.id.shard, role: d.id.role })
  current = new RouteTree(config, generation, log, onKnockout, metrics.hotKeys)
  const tree = () => current

  const reload = (reason: string): boolean => {
    let next: RouterConfig
    try {
      next = loadRouterConfig(configFile)
    } catch (error) {
      lastError = (error as Error).message
      metrics.reloads.inc({ outcome: 'failure' })
      log.error({ reason, error: lastError }, 'config refused; the last good config keeps serving')
      return false
    }
    if (formatEndpoint(next.listen.data) !== formatEndpoint(config.listen.data) || formatEndpoint(next.listen.admin) !== formatEndpoint(config.listen.admin)) {
      log.warn('listen addresses changed in the config: they take effect on restart')
    }
    const previous = current
    config = next
    generation++
    current = new RouteTree(next, generation, log, onKnockout, metrics.hotKeys)
    lastError = null
    loadedAt = new Date().toISOString()
    metrics.reloads.inc({ outcome: 'success' })
    log.info({ reason, generation }, 'config reloaded')
    // Requests that started on the old tree finish on it; then its connections close.
    void previous.close(OLD_TREE_GRACE_MS)
    return true
  }

  const clock = new HybridLogicalClock()
  const front = roles.data ? createFront({ log, maxValueBytes: config.limits.maxValueBytes, accessLog: config.accessLog, clock, metrics, tree }) : null
  const admin = roles.admin ? await createRouterAdmin({ log, metrics, metricsText: roles.metricsText, tree, started: () => started, reloads: () => ({ generation, lastError, loadedAt }) }) : null
  await front?.listen({ host: config.listen.data.host, port: config.listen.data.port })
  await admin?.listen({ host: config.listen.admin.host, port: config.listen.admin.port })
  started = true

  // Watch the directory, not the file: a ConfigMap update swaps a symlink next to the file.
  let debounce: NodeJS.Timeout | null = null
  const watcher: FSWatcher = watch(dirname(configFile), () => {
    if (debounce) clearTimeout(debounce)
    debounce = setTimeout(() => {
      let text: string
      try {
        text = readFileSync(configFile, 'utf8')
      } catch {
        return
      }
      if (text === loadedText) return
      loadedText = text
      reload(`${basename(configFile)} changed`)
    }, 100)
  })
  const onHangup = () => {
    loadedText = readFileSync(configFile, 'utf8')
    reload('SIGHUP')
  }
  process.on('SIGHUP', onHangup)

  return {
    data: front ? (front.server.address() as AddressInfo) : null,
    admin: admin ? (admin.server.address() as AddressInfo) : null,
    metrics,
    tree,
    reload,
    async close(graceMs = 4000) {
      started = false
      watcher.close()
      if (debounce) clearTimeout(debounce)
      process.off('SIGHUP', onHangup)
      // Stop accepting, let in-flight requests finish, then close shard connections.
      await Promise.all([front?.close(), admin?.close()])
      await current.close(graceMs)
    },
  }
}
