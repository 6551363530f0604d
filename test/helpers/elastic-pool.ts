// A pool that grows and shrinks under test: shards (one with a replica), routers each reloading
// its own config file, a model of every key's acknowledged writes checked by a reader sweeping
// through the routers, SL.SCAN dumps of the shards, and the rebalance job run as a child process.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { parseRouterConfig } from '../../router/config.ts'
import { poolRing } from '../../router/pool-layout.ts'
import { entryIsTombstone } from '../../shard/entry.ts'
import { startRouterProcess, startShardProcess, superviseProcess, type RouterProcess, type ShardProcess, type Teardown } from './processes.ts'
import { startPair, type Pair } from './shard-pair.ts'

const CLI = fileURLToPath(new URL('../../cli/shardline.ts', import.meta.url))

export interface PoolShard {
  name: string
  primary: ShardProcess
  replica?: ShardProcess
  draining?: boolean
}

/**
 * Starting many processes at once on a busy 2-core machine has been seen to take over 30 s each
 * (every one compiles the same code): the shards get longer than processes.ts's default.
 */
const SHARD_START_MS = 120_000

/** Shards named as given; the one named withReplica, if any, is a primary and replica pair (startPair). */
export async function startShards(t: Teardown, names: string[], withReplica?: string): Promise<{ shards: Map<string, PoolShard>; pair: Pair | null }> {
  // The pair first and alone: startPair keeps processes.ts's default start timeout.
  const pair = withReplica === undefined ? null : await startPair(t)
  const plain = await Promise.all(names.filter((name) => name !== withReplica).map((name) => startShardProcess(t, ['--name', name], SHARD_START_MS)))
  const shards = new Map<string, PoolShard>()
  let next = 0
  for (const name of names) shards.set(name, name === withReplica ? { name, primary: pair!.primary, replica: pair!.replica } : { name, primary: plain[next++] })
  return { shards, pair }
}

const destination = (shard: ShardProcess) => `{ address: 127.0.0.1:${shard.port}, admin: 127.0.0.1:${shard.adminPort} }`

/**
 * The routers' config for these shards, in this order (hot keys off: the test places keys by the
 * ring alone). Default heartbeats and generous timeouts: on a busy 2-core machine tighter ones
 * knocked out shards that were only slow, which is not what these tests are about. Idle client
 * connections are kept longer than fetch's keep-alive (4 s), so that fetch never reuses one the
 * router is closing.
 */
export function poolYaml(shards: PoolShard[]): string {
  return `listen: { data: 127.0.0.1:0, admin: 127.0.0.1:0 }
pools:
  main:
    hotKeys: { enabled: false }
    shards:
${shards.map((shard) => `      - name: ${shard.name}
        primary: ${destination(shard.primary)}
        replicas: [${shard.replica ? destination(shard.replica) : ''}]${shard.draining ? '\n        draining: true' : ''}`).join('\n')}
health: { probeInitialMs: 100, probeMaxMs: 400 }
connections: { timeoutMs: 2000, connectTimeoutMs: 500 }
limits: { idleTimeoutMs: 60000 }
`
}

/** The ring a router on this yaml places keys with. */
export function ringOf(yaml: string) {
  const config = parseRouterConfig(yaml, 'pool.yaml')
  return poolRing(config.pools.main, config.hashing.pointsPerShard)
}

/** A router on its own config file (in its own directory: routers reload on a change there). */
export class PoolRouter {
  readonly file: string
  process!: RouterProcess

  private constructor(file: string) {
    this.file = file
  }

  static async start(t: Teardown, yaml: string): Promise<PoolRouter> {
    const router = new PoolRouter(join(mkdtempSync(join(tmpdir(), 'shardline-pool-')), 'router.yaml'))
    writeFileSync(router.file, yaml)
    router.process = await startRouterProcess(t, router.file)
    return router
  }

  async generation(): Promise<number> {
    return ((await (await fetch(`${this.process.adminUrl}/admin/config`)).json()) as { generation: number }).generation
  }

  /** Rewrites the config file and waits until the router runs on it. */
  async reload(yaml: string): Promise<void> {
    const before = await this.generation()
    writeFileSync(this.file, yaml)
    const deadline = Date.now() + 10_000
    while ((await this.generation()) === before) {
      if (Date.now() > deadline) throw new Error(`router on ${this.file} did not reload`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  async batch(ops: object[]): Promise<Array<{ value?: string; stored?: boolean; deleted?: boolean; code?: string }>> {
    const response = await fetch(`${this.process.url}/-/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ops }) })
    if (response.status !== 200) throw new Error(`batch answered ${response.status}: ${await response.text()}`)
    return ((await response.json()) as { results: Array<{ value?: string }> }).results
  }
}

export const keyName = (i: number) => `key:${i}`
const valueOf = (i: number, n: number) => `v${i}.${n}`

/**
 * Every key's writes, numbered: a read that starts after write n of a key was acknowledged must
 * see write n or a later one (never an older value), and never a write not yet sent. Deleted keys
 * are gone for good once their delete is acknowledged. Writes go through one router, one at a
 * time per key, so their versions (that router's clock) follow their numbers.
 */
export class KeyModel {
  readonly count: number
  private readonly acked: Int32Array
  private readonly sent: Int32Array
  private readonly deleteSent = new Set<number>()
  private readonly deleteAcked = new Set<number>()
  readonly problems: string[] = []
  /**
   * Which keys may fail to read (an error, or not found though live) without it being a problem,
   * e.g. those on a shard that is down: counted in readErrors. A wrong value always is a problem.
   */
  mayFailToRead: (k: number) => boolean = () => false
  readErrors = 0
  reads = 0
  writes = 0

  constructor(count: number) {
    this.count = count
    this.acked = new Int32Array(count)
    this.sent = new Int32Array(count)
  }

  /** Writes every key's first value; a write the busy machine timed out is sent again (a set is idempotent). */
  async load(router: PoolRouter): Promise<void> {
    for (let i = 0; i < this.count; i += 500) {
      let pending = Array.from({ length: Math.min(500, this.count - i) }, (_, j) => i + j)
      for (let attempt = 1; pending.length > 0; attempt++) {
        const results = await router.batch(pending.map((k) => ({ op: 'set', key: keyName(k), value: valueOf(k, 0) })))
        const failed = pending.filter((_, j) => !results[j].stored)
        if (failed.length > 0 && attempt === 5) throw new Error(`loading the keys failed: ${JSON.stringify(results.find((result) => !result.stored))}`)
        pending = failed
      }
    }
  }

  get deleted(): ReadonlySet<number> {
    return this.deleteAcked
  }

  /** One sweep over every key through router, checking each read against what was acknowledged before it. */
  async sweep(router: PoolRouter, label: string): Promise<void> {
    for (let i = 0; i < this.count; i += 500) {
      const indexes = Array.from({ length: Math.min(500, this.count - i) }, (_, j) => i + j)
      const floor = indexes.map((k) => this.acked[k])
      const goneBefore = indexes.map((k) => this.deleteAcked.has(k))
      let results
      try {
        results = await router.batch(indexes.map((k) => ({ op: 'get', key: keyName(k) })))
      } catch (error) {
        for (const k of indexes) this.readFailed(k, `${label}: ${keyName(k)}: ${(error as Error).message}`)
        continue
      }
      results.forEach((result, j) => {
        const k = indexes[j]
        this.reads++
        if (result.code === 'not_found') {
          if (!this.deleteSent.has(k)) this.readFailed(k, `${label}: ${keyName(k)} not found (last acknowledged write ${floor[j]})`)
          return
        }
        if (result.value === undefined) {
          this.readFailed(k, `${label}: ${keyName(k)} failed: ${JSON.stringify(result)}`)
          return
        }
        const n = Number(/^v\d+\.(\d+)$/.exec(result.value)?.[1] ?? NaN)
        if (goneBefore[j]) this.problems.push(`${label}: ${keyName(k)} read ${result.value} after its delete was acknowledged`)
        else if (!(n >= floor[j] && n <= this.sent[k])) this.problems.push(`${label}: ${keyName(k)} read ${result.value}, but write ${floor[j]} was acknowledged before the read`)
      })
    }
  }

  private readFailed(k: number, problem: string): void {
    this.readErrors++
    if (!this.mayFailToRead(k)) this.problems.push(problem)
  }

  /** Rewrites random keys (and deletes the ones deleteEvery picks, once) through router until stop() resolves. */
  async writeUntil(router: PoolRouter, stop: Promise<unknown>, deleteEvery = 50): Promise<void> {
    let stopped = false
    void stop.then(() => (stopped = true))
    let turn = 0
    while (!stopped) {
      const k = Math.floor(Math.random() * this.count)
      if (this.deleteSent.has(k)) continue
      const remove = k % deleteEvery === 7 && turn++ % 4 === 0
      const n = remove ? 0 : ++this.sent[k]
      if (remove) this.deleteSent.add(k)
      try {
        const [result] = await router.batch([remove ? { op: 'delete', key: keyName(k) } : { op: 'set', key: keyName(k), value: valueOf(k, n) }])
        if (remove && result.deleted !== undefined) this.deleteAcked.add(k)
        else if (result.stored) this.acked[k] = n
        this.writes++
      } catch {
        // Not acknowledged: the model asks nothing of it.
      }
    }
  }

  /** Keys that must be live now: not deleted. */
  isLive(k: number): boolean {
    return !this.deleteSent.has(k)
  }
}

/** Sweeps through the routers in turn until stop() resolves; returns the number of sweeps. */
export async function readUntil(model: KeyModel, routers: PoolRouter[], stop: Promise<unknown>, label: string): Promise<number> {
  let stopped = false
  void stop.then(() => (stopped = true))
  let sweeps = 0
  while (!stopped) await model.sweep(routers[sweeps++ % routers.length], `${label}, sweep ${sweeps}`)
  return sweeps
}

/** Every key a shard holds (SL.SCAN to the end), with whether it is a tombstone. */
export async function dumpShard(shard: ShardProcess): Promise<Map<string, { tombstone: boolean }>> {
  const redis = new Redis({ port: shard.port, host: '127.0.0.1', maxRetriesPerRequest: 0 })
  try {
    const keys = new Map<string, { tombstone: boolean }>()
    let cursor = '0'
    do {
      const [next, flat] = (await redis.callBuffer('SL.SCAN', cursor, 'COUNT', '1000')) as [Buffer, Buffer[]]
      for (let i = 0; i < flat.length; i += 2) keys.set(flat[i].toString('latin1'), { tombstone: entryIsTombstone(flat[i + 1].toString('latin1')) })
      cursor = next.toString()
    } while (cursor !== '0')
    return keys
  } finally {
    redis.disconnect()
  }
}

export interface JobRun {
  code: number | null
  output: string
  summary: { scanned: number; moved: number; skippedOlder: number; removed: number; failed: number } | null
  /** The job's /metrics text, scraped while it ran. */
  metrics: string
}

const SUMMARY = /rebalance: scanned (\d+) keys, moved (\d+), skipped (\d+) as older, removed (\d+), failed (\d+) in [\d.]+ s/

/**
 * Runs `shardline rebalance --config file` to its end as a child process (killed at teardown if
 * the test ends first), scraping its metrics once they are served; whileRunning runs beside it,
 * and then the job is sent signal, if one is given.
 */
export async function runRebalance(t: Teardown, file: string, flags: string[] = [], whileRunning: (metricsUrl: string) => Promise<unknown> = async () => {}, signal?: NodeJS.Signals): Promise<JobRun> {
  const child = spawn(process.execPath, [CLI, 'rebalance', '--config', file, '--metrics', '127.0.0.1:0', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit')
  const job = await superviseProcess(t, child, /rebalance: metrics on (http:\/\/\S+)/, 'rebalance', 30_000)
  const metricsUrl = job.match[1]
  let metrics = ''
  await Promise.all([
    whileRunning(metricsUrl).then(() => signal && child.kill(signal)),
    fetch(metricsUrl).then(async (response) => (metrics = await response.text()), () => {}),
  ])
  const [code] = (await exited) as [number | null]
  const output = job.output()
  const found = SUMMARY.exec(output)
  const summary = found ? { scanned: Number(found[1]), moved: Number(found[2]), skippedOlder: Number(found[3]), removed: Number(found[4]), failed: Number(found[5]) } : null
  return { code, output, summary, metrics }
}
