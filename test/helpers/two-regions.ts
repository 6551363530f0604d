// Two regions as real processes on loopback, for the multi-region tests and bench: per region shard pairs and
// a router, each region's shards shipping to the other's router through a link proxy; region-level snapshots.
import { createHash, randomInt } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { stringify as stringifyYaml } from 'yaml'
import { entryExpiresAt, entryFlags, entryIsCounter, entryIsTombstone, entryPayload, entryVersion } from '../../shard/entry.ts'
import { LinkProxy } from './link-proxy.ts'
import { startRouterProcess, startShardProcess, waitFor, type RouterProcess, type Teardown } from './processes.ts'
import {
  DEFAULT_REPLICATION, DEFAULT_ROUTER, ReplicatedCluster, ShardNode, type RouterClient, type ShardPair,
} from './replicated-cluster.ts'

export interface RegionOptions {
  name: string
  id: number
  shards: number
}

export interface TwoRegionOptions {
  /** Default: east (id 1) with 1 shard pair, west (id 2) with 2: the receiving side routes by its own ring (and 6 shard processes suit 2 cores). */
  regions?: [RegionOptions, RegionOptions]
  /** Shard region settings (common/region.ts): short hellos so that restarts are noticed within a test. */
  helloMs?: number
  scanKeysPerSecond?: number
  maxInFlightOps?: number
  /** Longer than any partition a test holds, so a delete cannot come back. */
  tombstoneTtlMs?: number
}

const DEFAULT_REGIONS: [RegionOptions, RegionOptions] = [{ name: 'east', id: 1, shards: 1 }, { name: 'west', id: 2, shards: 2 }]
const POOL = 'main'
const START_ATTEMPTS = 2

/** One entry of a region as its shards hold it (SL.SCAN): what must be equal in two converged regions. */
export interface RegionEntry {
  key: string
  version: number
  kind: 'value' | 'counter' | 'tombstone'
  flags: number
  /** Latin1: a value's bytes, or a counter's sum and per-writer components. */
  payload: string
  /** Time left (ms), 0 = no expiry. Not compared: the two regions' clocks read it at different moments. */
  ttlMs: number
  shard: string
}

export interface RegionSnapshot {
  entries: Map<string, RegionEntry>
  /** Keys two shards of the region both hold (a key belongs to one shard of a ring): each one a bug. */
  duplicates: string[]
}

/** One region: its shard pairs and router (on fixed ports, so a restart keeps every address), and the link its shards ship over. */
export class Region {
  readonly name: string
  readonly id: number
  readonly pairs: ShardPair[]
  /** The region's router and shards as the replication fault helpers see them (waitHealthy, waitConverged, outputTails). */
  readonly cluster: ReplicatedCluster
  /** The link from this region's shards to the other region's router. */
  readonly outbound: LinkProxy
  readonly respPort: number
  private routerProcess: RouterProcess
  private readonly routerConfig: string
  private readonly owner: Teardown

  constructor(fields: Pick<Region, 'name' | 'id' | 'pairs' | 'outbound' | 'respPort'> & { routerProcess: RouterProcess; routerConfig: string; owner: Teardown; cluster: ReplicatedCluster }) {
    this.name = fields.name
    this.id = fields.id
    this.pairs = fields.pairs
    this.outbound = fields.outbound
    this.respPort = fields.respPort
    this.routerProcess = fields.routerProcess
    this.routerConfig = fields.routerConfig
    this.owner = fields.owner
    this.cluster = fields.cluster
  }

  get router(): RouterClient {
    return this.cluster.router
  }

  get primaries(): ShardNode[] {
    return this.pairs.map((pair) => pair.primary)
  }

  /** kill -9 of the router and every shard, then all started again on their ports: the region comes back empty. */
  async restartEmpty(): Promise<void> {
    await Promise.all([this.routerProcess.stop('SIGKILL'), ...this.cluster.nodes.map((node) => node.kill())])
    await this.startProcesses()
    await this.cluster.waitHealthy(30_000)
  }

  /** A RESP client of this region's router (closed when the test ends). */
  respClient(t: Teardown): Redis {
    const redis = new Redis({ port: this.respPort, host: '127.0.0.1', maxRetriesPerRequest: 1, enableReadyCheck: false })
    redis.on('error', () => {})
    t.teardown(() => redis.disconnect())
    return redis
  }

  /** Every primary's entries (SL.SCAN to the end), merged: the region's data whatever its shard count. */
  async snapshot(): Promise<RegionSnapshot> {
    const entries = new Map<string, RegionEntry>()
    const duplicates: string[] = []
    for (const primary of this.primaries) {
      for (const entry of await scanShard(primary)) {
        if (entries.has(entry.key)) duplicates.push(entry.key)
        entries.set(entry.key, entry)
      }
    }
    return { entries, duplicates }
  }

  /** The sum over this region's primaries of a shard metric's series that carry these labels (0 when absent). */
  async shardMetric(name: string, labels: Record<string, string>): Promise<number> {
    const values = await Promise.all(this.primaries.map((node) => shardMetric(node, name, labels)))
    return values.reduce((sum, value) => sum + value, 0)
  }

  /** What the router printed ('' before it started). */
  routerOutput(): string {
    return this.routerProcess.output?.() ?? ''
  }

  /**
   * Shards first, a pair at a time (ten processes starting at once on a busy 2-core machine took longer
   * than a start is given), then the router (which finds them up at its first probes).
   */
  async startProcesses(): Promise<void> {
    for (const pair of this.pairs) await Promise.all([pair.primary.start(), pair.replica.start()])
    this.routerProcess = await startRouterProcess(this.owner, this.routerConfig)
  }
}

export class TwoRegions {
  readonly regions: [Region, Region]
  private readonly cleanups: (() => unknown)[]

  constructor(regions: [Region, Region], cleanups: (() => unknown)[]) {
    this.regions = regions
    this.cleanups = cleanups
  }

  get east(): Region {
    return this.regions[0]
  }

  get west(): Region {
    return this.regions[1]
  }

  get links(): LinkProxy[] {
    return this.regions.map((region) => region.outbound)
  }

  peerOf(region: Region): Region {
    return region === this.regions[0] ? this.regions[1] : this.regions[0]
  }

  /**
   * Waits until every primary of both regions is connected to its peer region with nothing left to
   * ship (queue 0, lag 0), seen so on two polls in a row.
   */
  async waitCaughtUp(timeoutMs = 30_000): Promise<void> {
    let last: unknown = null
    let goodPolls = 0
    await waitFor(async () => {
      const views = await Promise.all(this.regions.flatMap((region) => region.primaries.map(async (node) => {
        const peer = this.peerOf(region).name
        const [connected, queue, lag] = await Promise.all(['shardline_region_connected', 'shardline_region_queue_ops', 'shardline_region_lag_seconds']
          .map((name) => shardMetric(node, name, { peer }).catch(() => NaN)))
        return { shard: `${region.name}/${node.name}`, connected, queue, lag }
      })))
      last = views
      goodPolls = views.every((view) => view.connected === 1 && view.queue === 0 && view.lag === 0) ? goodPolls + 1 : 0
      return goodPolls >= 2
    }, timeoutMs, () => `the regions never caught up with each other: ${JSON.stringify(last)}\n${this.outputTails()}`)
  }

  /** The last lines of every process, for a failure message. */
  outputTails(lines = 15): string {
    return this.regions.map((region) => `===== ${region.name}\n--- router\n${region.routerOutput().trimEnd().split('\n').slice(-lines).join('\n')}\n${region.cluster.outputTails(lines)}`).join('\n')
  }

  /** Kills every process and closes the link proxies (also done when the test ends). */
  close(): Promise<void> {
    return runCleanups(this.cleanups)
  }
}

/** Starts both regions and waits until each one's router admits all its shards; everything stops when t ends. */
export async function startTwoRegions(t: Teardown, options: TwoRegionOptions = {}): Promise<TwoRegions> {
  const cleanups: (() => unknown)[] = []
  t.teardown(() => runCleanups(cleanups))
  for (let attempt = 1; ; attempt++) {
    try {
      return await startTwoRegionsOnce(cleanups, options)
    } catch (error) {
      // Ports are chosen before the processes start; on a busy machine one was seen taken meanwhile.
      if (attempt >= START_ATTEMPTS || !String((error as Error).message).includes('EADDRINUSE')) throw error
      await runCleanups(cleanups)
    }
  }
}

async function startTwoRegionsOnce(cleanups: (() => unknown)[], options: TwoRegionOptions): Promise<TwoRegions> {
  const owner: Teardown = { teardown: (fn) => cleanups.push(fn) }
  const dir = mkdtempSync(join(tmpdir(), 'shardline-regions-'))
  // First in, so last out: a region restart reads its config files again.
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const specs = options.regions ?? DEFAULT_REGIONS
  // The routers' ports first: each region's link proxy forwards to the other region's router.
  const ports = await Promise.all(specs.map(async () => ({ data: await fixedPort(), admin: await fixedPort(), resp: await fixedPort() })))
  const links = await Promise.all(specs.map((spec, i) => LinkProxy.start(`${spec.name}->${specs[1 - i].name}`, { host: '127.0.0.1', port: ports[1 - i].resp })))
  cleanups.push(() => Promise.all(links.map((link) => link.close())))

  const regions = await Promise.all(specs.map(async (spec, i): Promise<Region> => {
    const peer = specs[1 - i]
    const shardConfig = join(dir, `${spec.name}-shard.yaml`)
    writeFileSync(shardConfig, stringifyYaml({
      replication: DEFAULT_REPLICATION,
      tombstoneTtlMs: options.tombstoneTtlMs ?? 600_000,
      region: {
        name: spec.name,
        id: spec.id,
        pool: POOL,
        mode: 'replicate',
        peers: [{ name: peer.name, router: links[i].address }],
        helloMs: options.helloMs ?? 200,
        scanKeysPerSecond: options.scanKeysPerSecond ?? 100_000,
        maxInFlightOps: options.maxInFlightOps ?? 1024,
      },
    }))
    const pairs = await shardPairs(owner, spec, shardConfig)
    const routerConfig = join(dir, `${spec.name}-router.yaml`)
    writeFileSync(routerConfig, routerYaml(spec, pairs, ports[i]))
    // Started below; the cluster's router client only needs the (fixed) addresses.
    const placeholder = { url: `http://127.0.0.1:${ports[i].data}`, adminUrl: `http://127.0.0.1:${ports[i].admin}` } as RouterProcess
    const cluster = new ReplicatedCluster({ pairs, network: null, replicationSettings: DEFAULT_REPLICATION, routerSettings: DEFAULT_ROUTER, routerProcesses: [placeholder] }, cleanups)
    return new Region({ name: spec.name, id: spec.id, pairs, outbound: links[i], respPort: ports[i].resp, routerProcess: placeholder, routerConfig, owner, cluster })
  }))
  await Promise.all(regions.map((region) => region.startProcesses()))
  await Promise.all(regions.map((region) => region.cluster.waitHealthy(30_000)))
  return new TwoRegions(regions as [Region, Region], cleanups)
}

/** A region's shard pairs (not started): each primary and replica name each other, on ports chosen now. */
async function shardPairs(owner: Teardown, spec: RegionOptions, shardConfig: string): Promise<ShardPair[]> {
  const pairs: ShardPair[] = []
  for (let i = 0; i < spec.shards; i++) {
    const name = `s${i}`
    const [primaryAt, replicaAt] = [{ port: await fixedPort(), adminPort: await fixedPort() }, { port: await fixedPort(), adminPort: await fixedPort() }]
    const node = (role: 'primary' | 'replica', at: typeof primaryAt, peerFlag: string[]) => {
      const nodeName = role === 'primary' ? name : `${name}.replica1`
      const args = ['--name', nodeName, '--host', '127.0.0.1', '--port', String(at.port), '--admin-port', String(at.adminPort), '--config', shardConfig, ...peerFlag]
      return new ShardNode({ name: nodeName, role, host: '127.0.0.1', ...at, testHost: null, destination: `${POOL}/${name}/${role === 'primary' ? 'primary' : 'replica1'}` }, args, (launchArgs) => startShardProcess(owner, launchArgs))
    }
    pairs.push({
      name,
      primary: node('primary', primaryAt, ['--replicas', `127.0.0.1:${replicaAt.port}`]),
      replica: node('replica', replicaAt, ['--replicaof', `127.0.0.1:${primaryAt.port}`]),
    })
  }
  return pairs
}

function routerYaml(spec: RegionOptions, pairs: ShardPair[], ports: { data: number; admin: number; resp: number }): string {
  const destination = (node: ShardNode) => ({ address: node.address, admin: `${node.host}:${node.adminPort}` })
  const { heartbeatMs, failuresBeforeKnockout, probeInitialMs, probeMaxMs, timeoutMs, connectTimeoutMs } = DEFAULT_ROUTER
  return stringifyYaml({
    listen: { data: `127.0.0.1:${ports.data}`, admin: `127.0.0.1:${ports.admin}`, resp: `127.0.0.1:${ports.resp}` },
    region: { name: spec.name, id: spec.id },
    pools: {
      [POOL]: {
        region: 'replicate',
        // Off: a hot key's copies and sub-counters would be keys of their own, crossing like any other.
        hotKeys: { enabled: false },
        shards: pairs.map((pair) => ({ name: pair.name, primary: destination(pair.primary), replicas: [destination(pair.replica)] })),
      },
    },
    health: { heartbeatMs, failuresBeforeKnockout, probeInitialMs, probeMaxMs },
    connections: { timeoutMs, connectTimeoutMs },
  })
}

/**
 * A loopback port free right now, below the kernel's ephemeral range. These ports are chosen before
 * the processes start (pairs name each other; a restart keeps them), and a port from the ephemeral
 * range (what port 0 gives) was seen taken meanwhile by some outgoing connection on a busy machine.
 */
/** Every port fixedPort gave in this process: free when checked, but already some process's to be. */
const portsGiven = new Set<number>()

async function fixedPort(): Promise<number> {
  const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]) || 32768
  for (let attempt = 0; ; attempt++) {
    const port = randomInt(10_000, ephemeralLow)
    if (portsGiven.has(port)) continue
    const server = net.createServer().listen(port, '127.0.0.1')
    const free = await new Promise<boolean>((resolve) => {
      server.once('listening', () => resolve(true))
      server.once('error', () => resolve(false))
    })
    if (free) {
      await new Promise((resolve) => server.close(resolve))
      portsGiven.add(port)
      return port
    }
    if (attempt >= 100) throw new Error(`no free port found below ${ephemeralLow}`)
  }
}

/** Runs each cleanup once, newest first; one that fails does not keep the others (and the processes they stop) from running. */
async function runCleanups(cleanups: (() => unknown)[]): Promise<void> {
  const failures: unknown[] = []
  for (const cleanup of cleanups.splice(0).reverse()) {
    await Promise.resolve().then(cleanup).catch((error: unknown) => failures.push(error))
  }
  if (failures.length > 0) throw failures[0]
}

/** Every entry a shard holds, tombstones and counters included (SL.SCAN to the end). */
export async function scanShard(node: ShardNode): Promise<RegionEntry[]> {
  const redis = new Redis({ port: node.port, host: node.host, maxRetriesPerRequest: 0, lazyConnect: true })
  redis.on('error', () => {})
  try {
    await redis.connect()
    const entries: RegionEntry[] = []
    let cursor = '0'
    do {
      const [next, flat] = (await redis.callBuffer('SL.SCAN', cursor, 'COUNT', '1000')) as [Buffer, Buffer[]]
      for (let i = 0; i < flat.length; i += 2) {
        const packed = flat[i + 1].toString('latin1')
        const kind = entryIsTombstone(packed) ? 'tombstone' : entryIsCounter(packed) ? 'counter' : 'value'
        entries.push({ key: flat[i].toString('latin1'), version: entryVersion(packed), kind, flags: entryFlags(packed), payload: entryPayload(packed), ttlMs: entryExpiresAt(packed), shard: node.name })
      }
      cursor = next.toString()
    } while (cursor !== '0')
    return entries
  } finally {
    redis.disconnect()
  }
}

export interface RegionComparison {
  /** Per region: entries compared, and a sha1 over them sorted by key (key, version, kind, flags, payload). */
  digests: { region: string; entries: number; sha1: string }[]
  /** The first keys whose entries differ (or that one region lacks), with both sides. */
  differences: { key: string; sides: (RegionEntry | null)[] }[]
  differing: number
}

/**
 * A region-level digest of both regions' entries whose key passes the filter, and the keys that differ.
 * Per-shard SL.DIGESTs cannot be compared across regions (their rings cut the keys differently), so the
 * entries are compared instead. Expired entries (time left 1 ms in SL.SCAN's form) count as absent.
 */
export async function compareRegions(regions: Region[], filter: (key: string) => boolean = () => true): Promise<RegionComparison> {
  const snapshots = await Promise.all(regions.map((region) => region.snapshot()))
  const kept = snapshots.map((snapshot) => new Map([...snapshot.entries].filter(([key, entry]) => filter(key) && entry.ttlMs !== 1)))
  const digests = kept.map((entries, i) => {
    const hash = createHash('sha1')
    for (const key of [...entries.keys()].sort()) {
      const entry = entries.get(key)!
      hash.update(`${key.length}:${key}|${entry.version}|${entry.kind}|${entry.flags}|${entry.payload.length}:`, 'latin1')
      hash.update(entry.payload, 'latin1')
    }
    return { region: regions[i].name, entries: entries.size, sha1: hash.digest('hex') }
  })
  const differences: RegionComparison['differences'] = []
  let differing = 0
  const allKeys = new Set(kept.flatMap((entries) => [...entries.keys()]))
  for (const key of [...allKeys].sort()) {
    const sides = kept.map((entries) => entries.get(key) ?? null)
    const same = sides.every((side) => side !== null && sides[0] !== null && side.version === sides[0].version && side.kind === sides[0].kind && side.flags === sides[0].flags && side.payload === sides[0].payload)
    if (same) continue
    differing++
    if (differences.length < 10) differences.push({ key, sides: sides.map((side) => side && { ...side, payload: side.payload.slice(0, 80) }) })
  }
  for (const [i, snapshot] of snapshots.entries()) if (snapshot.duplicates.length > 0) throw new Error(`${regions[i].name}: keys on two shards at once: ${snapshot.duplicates.slice(0, 10).join(', ')}`)
  return { digests, differences, differing }
}

/** One command to a shard over a fresh connection that gives up after timeoutMs. */
export async function shardCommand(node: ShardNode, args: string[], timeoutMs = 2000): Promise<unknown> {
  const redis = new Redis({ port: node.port, host: node.host, lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    await redis.connect()
    return await redis.call(args[0], ...args.slice(1))
  } finally {
    redis.disconnect()
  }
}

/** A shard metric: the sum of its series whose labels include these (0 when there is none yet). */
export async function shardMetric(node: ShardNode, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${node.adminUrl}/metrics`, { signal: AbortSignal.timeout(2000) })).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    const seriesLabels = new Map([...line.matchAll(/(\w+)="([^"]*)"/g)].map((match) => [match[1], match[2]]))
    if (Object.entries(labels).every(([label, value]) => seriesLabels.get(label) === value)) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}
