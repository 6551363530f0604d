// A cluster for the direct-mode client's tests: two pools with prefix routes over six shard processes
// (s0 with a replica, for failover), and a router over them whose config file a test may rewrite.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRouterProcess, startShardProcess, waitFor, type ShardProcess, type Teardown } from './processes.ts'

/** The prefix routes every direct-cluster config has (longest match wins; "sess" is shorter than "session:"). */
export const DIRECT_ROUTES = [
  { prefix: 'session:', pool: 'sessions' },
  { prefix: 'sess', pool: 'main' },
  { prefix: 'ключ/', pool: 'sessions' },
  { prefix: '🔑', pool: 'sessions' },
]

const SHARD_NAMES = ['s0', 's0.replica1', 's1', 's2', 't0', 't1']

export type DirectCluster = Awaited<ReturnType<typeof startDirectCluster>>

export async function startDirectCluster(t: Teardown) {
  const started = await Promise.all(SHARD_NAMES.map((name) => startShardProcess(t, ['--name', name])))
  /** By shard name; s0.replica1 is s0's replica. */
  const shards: Record<string, ShardProcess> = Object.fromEntries(SHARD_NAMES.map((name, i) => [name, started[i]]))
  const at = (name: string) => `127.0.0.1:${shards[name].port}`
  /** The config, with routes added after DIRECT_ROUTES. */
  const configText = (extraRoutes: { prefix: string; pool: string }[] = [], pointsPerShard = 8000) => `listen:
  data: 127.0.0.1:0
  admin: 127.0.0.1:0
pools:
  main:
    hotKeys: { enabled: false }
    shards:
      - { name: s0, primary: "${at('s0')}", replicas: ["${at('s0.replica1')}"] }
      - { name: s1, primary: "${at('s1')}" }
      - { name: s2, primary: "${at('s2')}" }
  sessions:
    shards:
      - { name: t0, primary: "${at('t0')}" }
      - { name: t1, primary: "${at('t1')}" }
routes: ${JSON.stringify([...DIRECT_ROUTES, ...extraRoutes])}
defaultPool: main
hashing: { pointsPerShard: ${pointsPerShard} }
health: { heartbeatMs: 100, failuresBeforeKnockout: 2, probeInitialMs: 100, probeMaxMs: 400 }
# Generous: a loaded two-core machine running tests with coverage can take a while to accept a connection.
connections: { timeoutMs: 2000, connectTimeoutMs: 2000 }
`
  const configFile = join(mkdtempSync(join(tmpdir(), 'shardline-direct-')), 'router.yaml')
  writeFileSync(configFile, configText())
  const router = await startRouterProcess(t, configFile)
  /** GET on the router's admin port. */
  const admin = async (path: string) => {
    const response = await fetch(`${router.adminUrl}${path}`)
    return { status: response.status, body: await response.json() }
  }
  return {
    router,
    configFile,
    shards,
    configText,
    admin,
    /** Rewrites the router's config file and waits until the router serves it; its new generation. */
    async publish(text: string): Promise<number> {
      const before = (await admin('/admin/config')).body.generation as number
      writeFileSync(configFile, text)
      return waitFor(async () => {
        const generation = (await admin('/admin/config')).body.generation as number
        return generation > before && generation
      }, 10_000, () => 'the router did not reload its config')
    },
  }
}

/** A key as one URL path segment: dots too are encoded, or "." and ".." would be resolved away. */
export const pathSegment = (key: string) => encodeURIComponent(key).replace(/\./g, '%2E')
