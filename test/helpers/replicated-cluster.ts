// Replicated clusters for fault tests: shard pairs (a primary and its replica, naming each other) and
// routers, on loopback or in network-namespace test hosts; kill, hang, cut, digests, and recording writers.
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { stringify as stringifyYaml } from 'yaml'
import { createTestHosts, ROOT, type TestNetwork } from './netns.ts'
import { SHARD_READY, START_TIMEOUT_MS, freePort, startRouterProcess, startShardProcess, superviseProcess, waitFor, type RouterProcess, type ShardProcess, type Teardown } from './processes.ts'

const CLI = fileURLToPath(new URL('../../cli/shardline.ts', import.meta.url))
/** Inside a test host every address is the host's own, so fixed ports cannot clash. */
const NETNS_PORTS = { data: 6380, admin: 9380 }

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export interface Digest {
  items: number
  sha1: string
}

/** SL.DIGEST over a fresh connection that gives up after timeoutMs (a hung shard never answers). */
export async function digestAt(host: string, port: number, timeoutMs = 1000): Promise<Digest> {
  const redis = new Redis({ host, port, lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    await redis.connect()
    const [items, sha1] = (await redis.call('SL.DIGEST')) as [number, string]
    return { items, sha1 }
  } finally {
    redis.disconnect()
  }
}

export interface PeerLag {
  peer: string
  ackedOffset: number
  lag: { ops: number; bytes: number; seconds: number }
}

/** The part of a shard's /stats these tests read. */
export interface ReplicationStats {
  role: string
  warmingUp: boolean
  offset: number
  peers: PeerLag[]
  upstream: { state: string; fullSyncs: number; partialSyncs: number } | null
  writeBack: { peer: string; state: string; fullSyncs: number; partialSyncs: number; lastFullSync: { records: number; seconds: number } | null }[]
}

/** One shard process slot: the same name, address and ports across kills and restarts. */
export class ShardNode {
  readonly name: string
  readonly role: 'primary' | 'replica'
  readonly host: string
  readonly port: number
  readonly adminPort: number
  /** The test host it runs in (netns), or null on loopback. */
  readonly testHost: string | null
  /** The router's name for it (as /admin/shards shows it). */
  readonly destination: string
  process: ShardProcess | null = null
  paused = false
  private readonly args: string[]
  private readonly launch: (args: string[]) => Promise<ShardProcess>
  private pastOutput = ''

  constructor(fields: Pick<ShardNode, 'name' | 'role' | 'host' | 'port' | 'adminPort' | 'testHost' | 'destination'>, args: string[], launch: (args: string[]) => Promise<ShardProcess>) {
    this.name = fields.name
    this.role = fields.role
    this.host = fields.host
    this.port = fields.port
    this.adminPort = fields.adminPort
    this.testHost = fields.testHost
    this.destination = fields.destination
    this.args = args
    this.launch = launch
  }

  get address(): string {
    return `${this.host}:${this.port}`
  }

  get adminUrl(): string {
    return `http://${this.host}:${this.adminPort}`
  }

  get running(): boolean {
    return this.process !== null
  }

  /** Starts (or restarts, on the same ports) and returns once it prints its ready line, which is before warm-up ends. */
  async start(): Promise<void> {
    if (this.process) throw new Error(`${this.name} is already running`)
    this.process = await this.launch(this.args)
    this.paused = false
  }

  /** kill -9, and waits for the exit. */
  async kill(): Promise<void> {
    const killed = this.process
    if (!killed) return
    this.process = null
    this.paused = false
    await killed.stop('SIGKILL')
    this.pastOutput += killed.output()
  }

  /** SIGSTOP: a hang; the kernel still accepts its connections, nothing answers them. */
  pause(): void {
    this.process?.child.kill('SIGSTOP')
    this.paused = this.process !== null
  }

  resume(): void {
    this.process?.child.kill('SIGCONT')
    this.paused = false
  }

  /** Everything every process in this slot printed. */
  output(): string {
    return this.pastOutput + (this.process?.output() ?? '')
  }

  async ready(): Promise<boolean> {
    if (!this.process || this.paused) return false
    try {
      return (await fetch(`${this.adminUrl}/readyz`, { signal: AbortSignal.timeout(1000) })).status === 200
    } catch {
      return false
    }
  }

  async replication(timeoutMs = 1000): Promise<ReplicationStats> {
    const response = await fetch(`${this.adminUrl}/stats`, { signal: AbortSignal.timeout(timeoutMs) })
    return ((await response.json()) as { replication: ReplicationStats }).replication
  }

  digest(): Promise<Digest> {
    return digestAt(this.host, this.port)
  }
}

export interface ShardPair {
  name: string
  primary: ShardNode
  replica: ShardNode
}

/** Replication settings for every shard: short timeouts so faults are noticed within a test's time. */
export interface ShardReplicationSettings {
  timeoutMs: number
  heartbeatMs: number
  warmupTimeoutMs: number
  /** Below the routers' op timeout (DEFAULT_ROUTER.timeoutMs), as the README asks. */
  catchUp: { stallMs: number }
}

export interface RouterSettings {
  heartbeatMs: number
  failuresBeforeKnockout: number
  probeInitialMs: number
  probeMaxMs: number
  timeoutMs: number
  connectTimeoutMs: number
}

/** The pool's hotKeys settings in the router config (see the README's Hot keys). */
export type HotKeySettings = Record<string, number | boolean>

export interface ClusterOptions {
  pairs?: number
  /** Run each shard in its own network-namespace test host (p0, r0, p1, …); the routers stay in the root namespace. */
  netns?: boolean
  replication?: Partial<ShardReplicationSettings>
  router?: Partial<RouterSettings>
  /** Routers over the same pairs, each deciding on its own which keys are hot (default 1). */
  routers?: number
  /** Default: spreading off, as these writers' keys are hot and copies of a hot key may be stale. */
  hotKeys?: HotKeySettings
}

export const DEFAULT_REPLICATION: ShardReplicationSettings = { timeoutMs: 1000, heartbeatMs: 50, warmupTimeoutMs: 15_000, catchUp: { stallMs: 250 } }
export const DEFAULT_ROUTER: RouterSettings = { heartbeatMs: 100, failuresBeforeKnockout: 2, probeInitialMs: 100, probeMaxMs: 400, timeoutMs: 500, connectTimeoutMs: 300 }

type Party = ShardNode | 'router'

export class ReplicatedCluster {
  readonly pairs: ShardPair[]
  readonly nodes: ShardNode[]
  readonly network: TestNetwork | null
  readonly replicationSettings: ShardReplicationSettings
  readonly routerSettings: RouterSettings
  /** The first router, which the writers and checkWrites use. */
  readonly router: RouterClient
  readonly routers: RouterClient[]
  private readonly cleanups: (() => unknown)[]
  private readonly cuts = new Map<string, [string, string]>()

  constructor(fields: Pick<ReplicatedCluster, 'pairs' | 'network' | 'replicationSettings' | 'routerSettings'> & { routerProcesses: RouterProcess[] }, cleanups: (() => unknown)[]) {
    this.pairs = fields.pairs
    this.nodes = fields.pairs.flatMap((pair) => [pair.primary, pair.replica])
    this.network = fields.network
    this.replicationSettings = fields.replicationSettings
    this.routerSettings = fields.routerSettings
    this.routers = fields.routerProcesses.map((process) => new RouterClient(process.url, process.adminUrl))
    this.router = this.routers[0]
    this.cleanups = cleanups
  }

  /** Drops traffic between two parties, both ways ('router' is the root namespace). netns only. */
  async partition(a: Party, b: Party): Promise<void> {
    const [x, y] = [this.hostOf(a), this.hostOf(b)]
    await this.network!.partition(x, y)
    this.cuts.set([x, y].sort().join('|'), [x, y])
  }

  async heal(a: Party, b: Party): Promise<void> {
    const [x, y] = [this.hostOf(a), this.hostOf(b)]
    await this.network!.heal(x, y)
    this.cuts.delete([x, y].sort().join('|'))
  }

  /** Undoes every fault: heals the cuts, resumes the hung, restarts the dead (on their own ports). */
  async recoverAll(): Promise<void> {
    for (const [x, y] of [...this.cuts.values()]) await this.network!.heal(x, y)
    this.cuts.clear()
    for (const node of this.nodes) if (node.paused) node.resume()
    await Promise.all(this.nodes.filter((node) => !node.running).map((node) => node.start()))
  }

  /** Every shard ready (warm-up done) and every destination admitted by every router. */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    let last = ''
    const deadline = Date.now() + timeoutMs
    // Shards first: a router's /admin/shards reads every shard's /stats, too much to ask every 20 ms of a
    // machine busy restarting one.
    await waitFor(async () => (await Promise.all(this.nodes.map((node) => node.ready()))).every(Boolean), timeoutMs, () => `a shard never became ready\n${this.outputTails()}`)
    await waitFor(async () => {
      const ready = await Promise.all(this.nodes.map((node) => node.ready()))
      const views = await Promise.all(this.routers.map((router) => router.shards().catch(() => [])))
      const out = views.map((shards) => shards.filter((d) => d.knockedOut).map((d) => d.name))
      last = `ready: ${JSON.stringify(Object.fromEntries(this.nodes.map((node, i) => [node.name, ready[i]])))}, knocked out per router: ${JSON.stringify(out)}`
      return ready.every(Boolean) && views.every((shards, i) => shards.length === this.nodes.length && out[i].length === 0)
    }, Math.max(0, deadline - Date.now()), () => `the cluster never became healthy (${last})\n${this.outputTails()}`)
  }

  /** Waits until a pair's primary and replica hold the same data, seen equal on three polls in a row. */
  async waitConverged(pair: ShardPair, timeoutMs = 20_000): Promise<Digest> {
    let last: unknown = null
    let equalPolls = 0
    let lastSha = ''
    return waitFor(async () => {
      const digests = await Promise.all([pair.primary.digest(), pair.replica.digest()]).catch((error: Error) => error)
      last = digests instanceof Error ? digests.message : digests
      if (digests instanceof Error || digests[0].sha1 !== digests[1].sha1) {
        equalPolls = 0
        return false
      }
      equalPolls = digests[0].sha1 === lastSha ? equalPolls + 1 : 1
      lastSha = digests[0].sha1
      return equalPolls >= 3 && digests[0]
    }, timeoutMs, () => `${pair.name}: primary and replica never converged (last digests ${JSON.stringify(last)})\n${this.outputTails()}`)
  }

  /** Writers through the router, each with its own keys (prefix-w<i>-k<j>), started; see Writer for paceMs. */
  startWriters(count: number, keysPerWriter: number, prefix: string, paceMs = 0): Writer[] {
    return Array.from({ length: count }, (_, i) => {
      const writer = new Writer(this.router, `${prefix}-w${i}`, keysPerWriter, paceMs)
      writer.start()
      return writer
    })
  }

  /** The router's view of one shard process (knocked out or not, and why). */
  async routerView(node: ShardNode): Promise<RouterDestination> {
    const found = (await this.router.shards()).find((d) => d.name === node.destination)
    if (!found) throw new Error(`the router has no destination ${node.destination}`)
    return found
  }

  /** The last lines each shard printed, for a failure message. */
  outputTails(lines = 15): string {
    return this.nodes.map((node) => `--- ${node.name} (${node.running ? (node.paused ? 'paused' : 'running') : 'dead'})\n${node.output().trimEnd().split('\n').slice(-lines).join('\n')}`).join('\n')
  }

  /** Kills every process started for this cluster and removes its test hosts (also done when t ends). */
  close(): Promise<void> {
    return runCleanups(this.cleanups)
  }

  private hostOf(party: Party): string {
    if (!this.network) throw new Error('partitions need the netns variant (startReplicatedCluster with netns: true)')
    if (party === 'router') return ROOT
    return party.testHost!
  }
}

/** Starts the shard pairs and the routers over them; everything is killed when t ends. */
export async function startReplicatedCluster(t: Teardown, options: ClusterOptions = {}): Promise<ReplicatedCluster> {
  const replicationSettings = { ...DEFAULT_REPLICATION, ...options.replication }
  const routerSettings = { ...DEFAULT_ROUTER, ...options.router }
  // Registered before anything starts, so a failed start still kills what did start.
  const cleanups: (() => unknown)[] = []
  t.teardown(() => runCleanups(cleanups))
  const owner: Teardown = { teardown: (fn) => cleanups.push(fn) }
  const dir = mkdtempSync(join(tmpdir(), 'shardline-replicated-'))
  const pairCount = options.pairs ?? 1
  let network: TestNetwork | null = null
  if (options.netns) {
    network = await createTestHosts(Array.from({ length: pairCount }, (_, i) => [`p${i}`, `r${i}`]).flat())
    cleanups.push(() => network!.destroy())
  }

  const shardConfig = join(dir, 'shard.yaml')
  writeFileSync(shardConfig, stringifyYaml({ replication: replicationSettings }))
  const place = async (hostName: string) => network
    ? { host: network.hosts[hostName].address, port: NETNS_PORTS.data, adminPort: NETNS_PORTS.admin, testHost: hostName }
    : { host: '127.0.0.1', port: await freePort(), adminPort: await freePort(), testHost: null }
  const pairs: ShardPair[] = []
  for (let i = 0; i < pairCount; i++) {
    const name = `s${i}`
    const [primaryAt, replicaAt] = [await place(`p${i}`), await place(`r${i}`)]
    const node = (role: 'primary' | 'replica', at: typeof primaryAt, peerFlag: string[]) => {
      const nodeName = role === 'primary' ? name : `${name}.replica1`
      const args = ['--name', nodeName, '--host', at.host, '--port', String(at.port), '--admin-port', String(at.adminPort), '--config', shardConfig, ...peerFlag]
      const launch = (launchArgs: string[]) => at.testHost === null ? startShardProcess(owner, launchArgs) : startShardInHost(owner, network!, at.testHost, launchArgs)
      return new ShardNode({ name: nodeName, role, ...at, destination: `main/${name}/${role === 'primary' ? 'primary' : 'replica1'}` }, args, launch)
    }
    pairs.push({
      name,
      primary: node('primary', primaryAt, ['--replicas', `${replicaAt.host}:${replicaAt.port}`]),
      replica: node('replica', replicaAt, ['--replicaof', `${primaryAt.host}:${primaryAt.port}`]),
    })
  }
  await Promise.all(pairs.flatMap((pair) => [pair.primary.start(), pair.replica.start()]))

  const routerConfig = join(dir, 'router.yaml')
  writeFileSync(routerConfig, routerYaml(pairs, routerSettings, options.hotKeys ?? { enabled: false }))
  const routerProcesses = await Promise.all(Array.from({ length: options.routers ?? 1 }, () => startRouterProcess(owner, routerConfig)))
  const cluster = new ReplicatedCluster({ pairs, network, replicationSettings, routerSettings, routerProcesses }, cleanups)
  await cluster.waitHealthy()
  return cluster
}

/** Runs each cleanup once, newest first (processes before the test hosts they run in). */
async function runCleanups(cleanups: (() => unknown)[]): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
}

function routerYaml(pairs: ShardPair[], settings: RouterSettings, hotKeys: HotKeySettings): string {
  const destination = (node: ShardNode) => `{ address: "${node.address}", admin: "${node.host}:${node.adminPort}" }`
  return `listen:
  data: 127.0.0.1:0
  admin: 127.0.0.1:0
pools:
  main:
    hotKeys: { ${Object.entries(hotKeys).map(([key, value]) => `${key}: ${value}`).join(', ')} }
    shards:
${pairs.map((pair) => `      - name: ${pair.name}
        primary: ${destination(pair.primary)}
        replicas: [${destination(pair.replica)}]`).join('\n')}
health:
  heartbeatMs: ${settings.heartbeatMs}
  failuresBeforeKnockout: ${settings.failuresBeforeKnockout}
  probeInitialMs: ${settings.probeInitialMs}
  probeMaxMs: ${settings.probeMaxMs}
connections:
  timeoutMs: ${settings.timeoutMs}
  connectTimeoutMs: ${settings.connectTimeoutMs}
`
}

/** Like startShardProcess, inside a test host: the process listens on the host's address. */
async function startShardInHost(owner: Teardown, network: TestNetwork, host: string, args: string[], timeoutMs = START_TIMEOUT_MS): Promise<ShardProcess> {
  const child = network.exec(host, process.execPath, [CLI, 'shard', ...args], { env: { ...process.env, SHARDLINE_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] })
  const { match, ...supervised } = await superviseProcess(owner, child, SHARD_READY, `shard in ${host}`, timeoutMs)
  return { ...supervised, port: Number(match[1]), adminUrl: match[2], adminPort: Number(match[3]) }
}

/** Runs redis-cli inside a test host (to reach a shard the root namespace is cut from). */
export async function redisCliInHost(network: TestNetwork, host: string, args: string[], timeoutMs = 2000): Promise<string> {
  const child = network.exec(host, 'redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  // redis-cli waits forever on a peer that never answers.
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  await once(child, 'exit')
  clearTimeout(timer)
  return output
}

export interface RouterDestination {
  name: string
  knockedOut: boolean
  /** ISO time of the knock-out, null while admitted. */
  knockedOutSince: string | null
  knockouts: number
  lastError: string | null
  replication: unknown
}

/** The router's HTTP API (the seed API) and the admin endpoints these tests read. */
export class RouterClient {
  readonly url: string
  readonly adminUrl: string

  constructor(url: string, adminUrl: string) {
    this.url = url
    this.adminUrl = adminUrl
  }

  /** The value under key (null when missing); throws on anything but 200 or 404. */
  async get(key: string): Promise<string | null> {
    const response = await fetch(`${this.url}/${encodeURIComponent(key)}`, { signal: AbortSignal.timeout(2000) })
    const body = await response.text()
    if (response.status === 404) return null
    if (response.status !== 200) throw new Error(`GET ${key}: ${response.status} ${body}`)
    return (JSON.parse(body) as { value: string }).value
  }

  async shards(): Promise<RouterDestination[]> {
    const response = await fetch(`${this.adminUrl}/admin/shards`, { signal: AbortSignal.timeout(2000) })
    return ((await response.json()) as { destinations: RouterDestination[] }).destinations
  }

  /** The keys this router currently spreads (hot, over copies or sub-counters) in a pool. */
  async spreadKeys(pool = 'main'): Promise<Set<string>> {
    const response = await fetch(`${this.adminUrl}/admin/hotkeys`, { signal: AbortSignal.timeout(2000) })
    const { pools } = (await response.json()) as { pools: Record<string, { key: string; spread: boolean }[]> }
    return new Set((pools[pool] ?? []).filter((hitter) => hitter.spread).map((hitter) => hitter.key))
  }
}

export interface WriteAttempt {
  key: string
  seq: number
  value: string
  sentAt: number
  settledAt: number
  /** 200 from the router: the write is acknowledged. Anything else leaves its outcome unknown. */
  acked: boolean
  outcome: string
}

/** A router that takes this long has lost the request; the router's own per-op timeout is far shorter. */
const REQUEST_TIMEOUT_MS = 5000
/** After a failed write: a busy loop of instant 503s would starve the shards of this machine's CPU. */
const FAILURE_PAUSE_MS = 10

/**
 * Writes its own keys through the router in turn, one request at a time, each value naming its key and
 * sequence number; records every attempt. One writer per key and one router make "newest" well defined:
 * the router's versions grow with the sequence numbers.
 */
export class Writer {
  readonly name: string
  readonly keys: string[]
  readonly history = new Map<string, WriteAttempt[]>()
  private readonly router: RouterClient
  /** At least this many ms from one write's start to the next: leaves CPU for restarts on a small machine. */
  private readonly paceMs: number
  private running = false
  private loop: Promise<void> | null = null

  constructor(router: RouterClient, name: string, keyCount: number, paceMs = 0) {
    this.router = router
    this.paceMs = paceMs
    this.name = name
    this.keys = Array.from({ length: keyCount }, (_, i) => `${name}-k${i}`)
    for (const key of this.keys) this.history.set(key, [])
  }

  start(): void {
    this.running = true
    this.loop = this.run()
  }

  async stop(): Promise<void> {
    this.running = false
    await this.loop
  }

  attempts(): WriteAttempt[] {
    return [...this.history.values()].flat()
  }

  private async run(): Promise<void> {
    for (let seq = 1; this.running; seq++) {
      const key = this.keys[seq % this.keys.length]
      const attempt: WriteAttempt = { key, seq, value: `${key}#${seq}`, sentAt: Date.now(), settledAt: 0, acked: false, outcome: '' }
      this.history.get(key)!.push(attempt)
      try {
        const response = await fetch(`${this.router.url}/${encodeURIComponent(key)}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ value: attempt.value }),
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        })
        const body = await response.text()
        attempt.acked = response.status === 200
        attempt.outcome = attempt.acked ? body : `${response.status} ${body}`
      } catch (error) {
        attempt.outcome = `error: ${(error as Error).message}`
      }
      attempt.settledAt = Date.now()
      const pause = Math.max(attempt.acked ? 0 : FAILURE_PAUSE_MS, attempt.sentAt + this.paceMs - attempt.settledAt)
      if (pause > 0) await delay(pause)
    }
  }
}

/** Acknowledged writes sent at or after a moment (so not answered by anything that was gone by then). */
export function ackedSentSince(writers: Writer[], since: number): number {
  let count = 0
  for (const writer of writers) for (const attempt of writer.attempts()) if (attempt.acked && attempt.sentAt >= since) count++
  return count
}

export interface Verdict {
  keys: number
  attempts: number
  acked: number
  unknown: number
  /** Acknowledged writes newer than what their key shows through the router: each one lost. */
  lost: WriteAttempt[]
  /** Keys showing a value no writer ever sent (a bug whatever the faults). */
  neverWritten: { key: string; shown: string | null }[]
  /** Keys showing a write whose outcome the writer never learned (allowed: it may have been applied). */
  unknownShown: number
}

/** Reads every writer's keys through the router and compares each with what was acknowledged. */
export async function checkWrites(router: RouterClient, writers: Writer[]): Promise<Verdict> {
  const verdict: Verdict = { keys: 0, attempts: 0, acked: 0, unknown: 0, lost: [], neverWritten: [], unknownShown: 0 }
  for (const writer of writers) {
    const shownValues = await Promise.all(writer.keys.map(async (key) => (await waitFor(async () => {
      try {
        return { value: await router.get(key) }
      } catch {
        return null
      }
    }, 10_000, () => `GET ${key} through the router kept failing`)).value))
    writer.keys.forEach((key, i) => {
      const attempts = writer.history.get(key)!
      const shown = shownValues[i]
      const shownAttempt = shown === null ? undefined : attempts.find((attempt) => attempt.value === shown)
      if (shown !== null && shownAttempt === undefined) verdict.neverWritten.push({ key, shown })
      const shownSeq = shownAttempt?.seq ?? 0
      verdict.lost.push(...attempts.filter((attempt) => attempt.acked && attempt.seq > shownSeq))
      if (shownAttempt && !shownAttempt.acked) verdict.unknownShown++
      verdict.keys++
      verdict.attempts += attempts.length
      verdict.acked += attempts.filter((attempt) => attempt.acked).length
    })
  }
  verdict.unknown = verdict.attempts - verdict.acked
  return verdict
}

/** Samples a primary's replication lag (seconds, from its replica's acknowledgements) until stopped. */
export function sampleReplicationLag(node: ShardNode, everyMs = 20): { samples: number[]; stop(): Promise<void> } {
  const samples: number[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      if (node.running && !node.paused) {
        const lag = await node.replication(500).then((stats) => stats.peers[0]?.lag.seconds, () => undefined)
        if (lag !== undefined && running) samples.push(lag)
      }
      await delay(everyMs)
    }
  })()
  return {
    samples,
    async stop() {
      running = false
      await loop
    },
  }
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}

/** A small seeded PRNG (mulberry32): the same seed gives the same fault schedule. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
