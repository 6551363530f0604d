// The cluster one run of bench/rebalance.ts works on: four shard primaries (the fourth joins the
// pool at the change), one router over a config written here, the pre-fill by the ring, the reload.
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseRouterConfig } from '../../router/config.ts'
import { poolRing } from '../../router/pool-layout.ts'
import { HOST, killProcess, RespClient, startShard, stopServer, type RunningServer } from '../lib.ts'
import { startRouter, type RunningRouter } from '../router/processes.ts'

export const POOL = 'main'
const SHARD_COUNT_AFTER = 4
/** Each shard holds every key it may own (about a third of 1M at 280 bytes each) without evicting. */
const SHARD_MEMORY = '256mb'
const PREFILL_BATCH = 1000
const PREFILL_BATCHES_IN_FLIGHT = 4

export interface Cluster {
  dir: string
  shards: RunningServer[]
  router: RunningRouter
  /** The router's config file: rewritten (atomically) to change the pool. */
  configFile: string
}

/** migration: the router's `migration` setting in the config after the change; absent, the default. */
export interface PoolChange {
  migration?: { windowMs: number }
}

/** Starts four shards and a router whose pool holds the first three. */
export async function startCluster(dir: string): Promise<Cluster> {
  // One after another: on a busy 2-core machine four starting at once can each take longer than startShard waits.
  const shards: RunningServer[] = []
  for (let i = 0; i < SHARD_COUNT_AFTER; i++) shards.push(await startShard({ name: `s${i}`, maxMemory: SHARD_MEMORY }))
  const backends = shards.slice(0, SHARD_COUNT_AFTER - 1).map((shard, i) => ({ name: `s${i}`, port: shard.port, adminPort: Number(new URL(shard.adminUrl!).port) }))
  const router = await startRouter(dir, backends)
  return { dir, shards, router, configFile: join(dir, 'router.yaml') }
}

export async function stopCluster(cluster: Cluster): Promise<void> {
  await Promise.all([killProcess(cluster.router.proc), ...cluster.shards.map(stopServer)])
}

/** The router config over the first shardCount shards, in bench/router/processes.ts's layout (one process, ports 0). */
export function routerConfig(cluster: Cluster, shardCount: number, change: PoolChange = {}): string {
  const lines = [
    'listen:',
    `  data: ${HOST}:0`,
    `  admin: ${HOST}:0`,
    'workers: 1',
    ...(change.migration ? ['migration:', `  windowMs: ${change.migration.windowMs}`] : []),
    'pools:',
    `  ${POOL}:`,
    '    shards:',
    ...cluster.shards.slice(0, shardCount).flatMap((shard, i) => [`      - name: s${i}`, `        primary: ${HOST}:${shard.port}`]),
  ]
  return `${lines.join('\n')}\n`
}

/**
 * Writes text as the router's config (rename, so the watcher never reads half a file) and waits
 * until the router has loaded it; the same text as the file's is no change (the router ignores it).
 */
export async function applyConfig(cluster: Cluster, text: string, timeoutMs = 10_000): Promise<void> {
  parseRouterConfig(text, cluster.configFile)
  if (readFileSync(cluster.configFile, 'utf8') === text) return
  const before = await reloads(cluster)
  const staged = `${cluster.configFile}.next`
  writeFileSync(staged, text)
  renameSync(staged, cluster.configFile)
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const now = await reloads(cluster)
    if (now.lastError !== null && now.lastError !== before.lastError) throw new Error(`router refused the config: ${now.lastError}`)
    if (now.generation > before.generation) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`router did not reload ${cluster.configFile} within ${timeoutMs} ms`)
}

async function reloads(cluster: Cluster): Promise<{ generation: number; lastError: string | null }> {
  const response = await fetch(`http://${HOST}:${cluster.router.adminPort}/admin/config`)
  if (!response.ok) throw new Error(`router /admin/config: HTTP ${response.status}`)
  return (await response.json()) as { generation: number; lastError: string | null }
}

/**
 * Stores keys 0..count-1 (named by keyName) straight on the shard the ring of configText gives each,
 * with pipelined SETs: the router's own placement, at the shards' speed rather than the router's.
 */
export async function prefill(cluster: Cluster, configText: string, count: number, keyName: (i: number) => string, value: Buffer): Promise<void> {
  const config = parseRouterConfig(configText, cluster.configFile)
  const ring = poolRing(config.pools[POOL], config.hashing.pointsPerShard)
  const byShard = new Map<string, string[]>(ring.nodes.map((name) => [name, []]))
  for (let i = 0; i < count; i++) {
    const key = keyName(i)
    byShard.get(ring.lookup(key))!.push(key)
  }
  await Promise.all([...byShard].map(async ([name, keys]) => {
    const client = await RespClient.connect(cluster.shards[Number(name.slice(1))].port)
    try {
      let next = 0
      const sender = async () => {
        while (next < keys.length) {
          const batch = keys.slice(next, next + PREFILL_BATCH)
          next += batch.length
          const replies = await client.pipeline(batch.map((key) => ['SET', key, value]))
          const failed = replies.findIndex((reply) => reply !== 'OK')
          if (failed >= 0) throw new Error(`pre-fill: SET ${batch[failed]} on ${name}: ${String(replies[failed])}`)
        }
      }
      await Promise.all(Array.from({ length: PREFILL_BATCHES_IN_FLIGHT }, sender))
    } finally {
      client.close()
    }
  }))
}

/** The names of the shards that hold key (a check that nothing was lost: every key was pre-filled and none evicted). */
export async function holders(cluster: Cluster, key: string): Promise<string[]> {
  const found = await Promise.all(cluster.shards.map(async (shard, i) => {
    const client = await RespClient.connect(shard.port)
    try {
      return (await client.command('EXISTS', key)) === 1 ? `s${i}` : null
    } finally {
      client.close()
    }
  }))
  return found.filter((name) => name !== null)
}
