// Replication (issue 4), shardline primary → replica beside redis-server's own replication, in
// the same run at the same write rate:
//   1. lag: a paced writer does 10,000 SETs/s (100-byte values) to the primary while a probe SETs
//      probe:<n> on the primary every 5 ms and polls the replica with GETs (one in flight, no
//      sleep) until it is there; OK on the primary → first seen on the replica is one sample.
//      Shardline's own exported lag (/stats) is sampled every 100 ms beside it.
//   2. full resync: the primary holds 1M items (100-byte values); an empty replica is started and
//      timed until it holds them all, while a reader keeps GETting from the primary.
// Options: --lag-seconds 10 --warmup-seconds 2 --rate 10000 --items 1000000 --first shard|redis
// --phase lag|resync|both. The shard primary runs without --replicas (it serves SL.SYNC anyway).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import {
  HOST,
  REPO_ROOT,
  RespClient,
  codeVersion,
  cpuSeconds,
  formatTable,
  loadAverage,
  parseInfo,
  PacedWriter,
  runMain,
  sleep,
  startRedis,
  spawnTracked,
  startShard,
  stopServer,
  waitForOutput,
  type RunningServer,
} from './lib.ts'

const SHARDLINE_CLI = join(REPO_ROOT, 'cli/shardline.ts')
const VALUE_BYTES = 100
const WRITER_KEYSPACE = 100_000
const MAX_MEMORY = '1gb'
const PROBE_TIMEOUT_MS = 5000
const STATS_INTERVAL_MS = 100
const DONE_POLL_MS = 20
const FILL_BATCH = 1000
const FILL_IN_FLIGHT = 4
const LAG_TARGET_MS = 10
const RESYNC_TARGET_S = 5

const { values: flags } = parseArgs({
  options: {
    'lag-seconds': { type: 'string', default: '10' },
    'warmup-seconds': { type: 'string', default: '2' },
    rate: { type: 'string', default: '10000' },
    items: { type: 'string', default: '1000000' },
    'probe-interval-ms': { type: 'string', default: '5' },
    first: { type: 'string', default: 'shard' },
    phase: { type: 'string', default: 'both' },
  },
  strict: true,
})
const LAG_SECONDS = Number(flags['lag-seconds'])
const WARMUP_SECONDS = Number(flags['warmup-seconds'])
const RATE = Number(flags.rate)
const ITEMS = Number(flags.items)
const PROBE_INTERVAL_MS = Number(flags['probe-interval-ms'])
const KINDS: Kind[] = flags.first === 'redis' ? ['redis', 'shard'] : ['shard', 'redis']
const PHASE = flags.phase
if (![LAG_SECONDS, RATE, ITEMS].every((n) => Number.isFinite(n) && n > 0) || ![WARMUP_SECONDS, PROBE_INTERVAL_MS].every((n) => Number.isFinite(n) && n >= 0) || !['shard', 'redis'].includes(flags.first) || !['lag', 'resync', 'both'].includes(PHASE)) {
  throw new Error('usage: bench/replication.ts [--lag-seconds s] [--warmup-seconds s] [--rate writes/s] [--items n] [--probe-interval-ms ms] [--first shard|redis] [--phase lag|resync|both]')
}

type Kind = 'shard' | 'redis'

// ---------------------------------------------------------------- statistics

interface Summary { n: number; p50: number; p90: number; p99: number; max: number }

/** Nearest-rank percentiles. */
function summarize(values: number[]): Summary {
  const sorted = Float64Array.from(values).sort()
  const at = (q: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)])
  return { n: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.length === 0 ? NaN : sorted[sorted.length - 1] }
}

const ms = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : '-')
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? (a / b).toFixed(2) : '-')

// ---------------------------------------------------------------- servers

interface Pair {
  kind: Kind
  primary: RunningServer
  replica: RunningServer
  /** performance.now() when the replica asked to sync, and when its process was spawned. */
  syncAt: number
  spawnAt: number
}

/** A shardline replica of primaryPort, started like bench/lib.ts startShard but with its ready time kept. */
async function startShardReplica(primaryPort: number): Promise<{ server: RunningServer; spawnAt: number; readyAt: number }> {
  const name = 'replica'
  const spawnAt = performance.now()
  const proc = spawnTracked(`shard ${name}`, process.execPath, [SHARDLINE_CLI, 'shard', '--port', '0', '--admin-port', '0', '--max-memory', MAX_MEMORY, '--policy', 'lru', '--name', name, '--replicaof', `${HOST}:${primaryPort}`], {
    cwd: REPO_ROOT,
    env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn' },
  })
  // The shard prints this line just after its replication link started connecting: the SYNC time.
  const match = await waitForOutput(proc, new RegExp(`shardline shard ${name} ready: resp ([\\d.]+):(\\d+) admin (http://\\S+)`), 30_000)
  const readyAt = performance.now()
  if (proc.child.pid === undefined) throw new Error('replica shard has no pid')
  // The heap-limit re-exec keeps the pid, so the child's pid is the shard's.
  return { server: { kind: 'shard', proc, port: Number(match[2]), pid: proc.child.pid, adminUrl: match[3] }, spawnAt, readyAt }
}

const tempDirs: string[] = []

async function startRedisPair(primary: RunningServer): Promise<Pair> {
  const spawnAt = performance.now()
  const replica = await startRedisIn()
  const client = await RespClient.connect(replica.port)
  try {
    const syncAt = performance.now()
    await client.command('REPLICAOF', HOST, String(primary.port))
    return { kind: 'redis', primary, replica, syncAt, spawnAt }
  } finally {
    client.close()
  }
}

/**
 * redis-server as bench/lib.ts startRedis starts it, plus a temp `dir` (a protected setting that
 * CONFIG SET refuses) and Redis 7's own default of diskless sync (the RDB streamed over the socket,
 * not written on the primary's disk) with no 5 s wait for more replicas; the replica keeps the
 * default repl-diskless-load disabled (it writes the RDB to its dir, then loads it).
 */
async function startRedisIn(): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-bench-redis-'))
  tempDirs.push(dir)
  return startRedis(['--dir', dir, '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0', '--repl-diskless-load', 'disabled'])
}

async function startPrimary(kind: Kind): Promise<RunningServer> {
  if (kind === 'shard') return startShard({ maxMemory: MAX_MEMORY, policy: 'lru', name: 'primary' })
  return startRedisIn()
}

async function startReplica(kind: Kind, primary: RunningServer): Promise<Pair> {
  if (kind === 'redis') return startRedisPair(primary)
  const { server, spawnAt, readyAt } = await startShardReplica(primary.port)
  return { kind, primary, replica: server, syncAt: readyAt, spawnAt }
}

type Json = Record<string, unknown>

async function getStats(server: RunningServer): Promise<Json> {
  const response = await fetch(`${server.adminUrl}/stats`)
  if (!response.ok) throw new Error(`${server.adminUrl}/stats: ${response.status}`)
  return (await response.json()) as Json
}

function replicationOf(stats: Json): Json {
  return stats.replication as Json
}

async function redisReplicationInfo(server: RunningServer, client?: RespClient): Promise<Record<string, string>> {
  const own = client ?? (await RespClient.connect(server.port))
  try {
    return parseInfo(await own.commandText('INFO', 'replication'))
  } finally {
    if (!client) own.close()
  }
}

/** True once the replica has applied a full sync and streams: shard /stats upstream, redis INFO. */
async function replicaSynced(pair: Pair, client: RespClient): Promise<boolean> {
  if (pair.kind === 'shard') {
    const upstream = replicationOf(await getStats(pair.replica)).upstream as Json | null
    return upstream !== null && upstream.state === 'streaming' && upstream.lastFullSync !== null
  }
  const info = await redisReplicationInfo(pair.replica, client)
  return info.master_link_status === 'up' && info.master_sync_in_progress === '0'
}

async function waitSynced(pair: Pair, timeoutMs: number, pollMs: number): Promise<number> {
  const client = await RespClient.connect(pair.replica.port)
  try {
    const deadline = performance.now() + timeoutMs
    while (performance.now() < deadline) {
      if (await replicaSynced(pair, client)) return performance.now()
      await sleep(pollMs)
    }
  } finally {
    client.close()
  }
  throw new Error(`${pair.kind} replica not in sync within ${timeoutMs} ms:\n${pair.replica.proc.output()}`)
}

async function dbsize(server: RunningServer): Promise<number> {
  const client = await RespClient.connect(server.port)
  try {
    return Number(await client.command('DBSIZE'))
  } finally {
    client.close()
  }
}

/** After the writes stop: waits until the replica acknowledged everything, then compares contents. */
async function converged(pair: Pair): Promise<string> {
  const deadline = performance.now() + 60_000
  if (pair.kind === 'shard') {
    while (performance.now() < deadline) {
      const peers = replicationOf(await getStats(pair.primary)).peers as Json[]
      if (peers.length === 1 && (peers[0].lag as Json).ops === 0) break
      await sleep(50)
    }
    const [primaryClient, replicaClient] = await Promise.all([RespClient.connect(pair.primary.port), RespClient.connect(pair.replica.port)])
    try {
      // Timed: SL.DIGEST hashes every item synchronously, and the shard answers nothing meanwhile.
      const timedDigest = async (client: RespClient) => {
        const started = performance.now()
        const reply = (await client.command('SL.DIGEST')) as [number, Buffer]
        return { items: reply[0], sha1: reply[1].toString(), seconds: (performance.now() - started) / 1000 }
      }
      const [a, b] = await Promise.all([timedDigest(primaryClient), timedDigest(replicaClient)])
      const same = a.items === b.items && a.sha1 === b.sha1
      return `SL.DIGEST ${same ? 'equal' : 'DIFFERENT'} (primary ${a.items} items ${a.sha1.slice(0, 12)}… in ${a.seconds.toFixed(2)} s, replica ${b.items} items ${b.sha1.slice(0, 12)}… in ${b.seconds.toFixed(2)} s)`
    } finally {
      primaryClient.close()
      replicaClient.close()
    }
  }
  let primaryOffset = ''
  let replicaOffset = ''
  while (performance.now() < deadline) {
    const [p, r] = await Promise.all([redisReplicationInfo(pair.primary), redisReplicationInfo(pair.replica)])
    primaryOffset = p.master_repl_offset
    replicaOffset = r.slave_repl_offset
    if (primaryOffset === replicaOffset) break
    await sleep(50)
  }
  const [a, b] = await Promise.all([dbsize(pair.primary), dbsize(pair.replica)])
  return `repl offsets ${primaryOffset === replicaOffset ? 'equal' : `DIFFERENT (${primaryOffset} vs ${replicaOffset})`}, DBSIZE ${a === b ? 'equal' : 'DIFFERENT'} (${a} / ${b})`
}

function warnings(server: RunningServer): string {
  const lines = server.proc.output().split('\n').filter((line) => /"level":[456]0|warn|error/i.test(line))
  return lines.length === 0 ? 'none' : `${lines.length}: ${lines.slice(-3).join(' / ').slice(0, 400)}`
}

// ---------------------------------------------------------------- lag


interface LagRun {
  kind: Kind
  achievedRate: number
  writerErrors: number
  lag: Summary
  /** Samples whose probe was already on the replica at the first GET. */
  firstPollShare: number
  probeSetRtt: Summary
  timeouts: number
  /** Shardline's own figures, sampled from /stats: the primary's view per peer, the replica's upstream view. */
  exportedPrimary: Summary | null
  exportedReplica: Summary | null
  primaryCpuShare: number
  replicaCpuShare: number
  primaryCpuPerWrite: number
  replicaCpuPerWrite: number
  check: string
  warnings: string
}

async function measureLag(kind: Kind): Promise<LagRun> {
  const primary = await startPrimary(kind)
  let pair: Pair | null = null
  try {
    pair = await startReplica(kind, primary)
    await waitSynced(pair, 30_000, 50)
    const [writerClient, probeWriter, probeReader] = await Promise.all([
      RespClient.connect(primary.port), RespClient.connect(primary.port), RespClient.connect(pair.replica.port),
    ])
    try {
      const writer = new PacedWriter(writerClient, RATE, { keyPrefix: 'w:', keyspace: WRITER_KEYSPACE, valueBytes: VALUE_BYTES })
      const start = performance.now()
      const measureFrom = start + WARMUP_SECONDS * 1000
      const measureUntil = measureFrom + LAG_SECONDS * 1000
      writer.start()

      // Exported lag, every 100 ms during the measured window (shardline only).
      const exportedPrimary: number[] = []
      const exportedReplica: number[] = []
      let sampling = true
      const sampler = (async () => {
        if (kind !== 'shard') return
        while (sampling) {
          const now = performance.now()
          if (now >= measureFrom && now < measureUntil) {
            const [p, r] = await Promise.all([getStats(primary), getStats(pair!.replica)])
            const peers = replicationOf(p).peers as Json[]
            if (peers.length > 0) exportedPrimary.push(((peers[0].lag as Json).seconds as number) * 1000)
            const upstream = replicationOf(r).upstream as Json
            exportedReplica.push(((upstream.lag as Json).seconds as number) * 1000)
          }
          await sleep(STATS_INTERVAL_MS - ((performance.now() - now) % STATS_INTERVAL_MS))
        }
      })()

      await sleep(WARMUP_SECONDS * 1000)
      const cpuBefore = [cpuSeconds(primary.pid), cpuSeconds(pair.replica.pid)]
      const ackedBefore = writer.acked
      const windowStart = performance.now()

      // The probe: one outstanding at a time, one started every PROBE_INTERVAL_MS.
      const lags: number[] = []
      const setRtts: number[] = []
      let firstPoll = 0
      let timeouts = 0
      for (let n = 0; performance.now() < measureUntil; n++) {
        const sentAt = performance.now()
        const key = `probe:${n}`
        const reply = await probeWriter.command('SET', key, String(Date.now()))
        const okAt = performance.now()
        if (reply !== 'OK') throw new Error(`probe SET answered ${String(reply)}`)
        let polls = 0
        let seenAt = NaN
        while (performance.now() - okAt < PROBE_TIMEOUT_MS) {
          polls++
          if ((await probeReader.command('GET', key)) !== null) {
            seenAt = performance.now()
            break
          }
        }
        if (Number.isNaN(seenAt)) timeouts++
        else {
          lags.push(seenAt - okAt)
          setRtts.push(okAt - sentAt)
          if (polls === 1) firstPoll++
        }
        const wait = sentAt + PROBE_INTERVAL_MS - performance.now()
        if (wait > 0) await sleep(wait)
      }

      const windowSeconds = (performance.now() - windowStart) / 1000
      const cpu = [cpuSeconds(primary.pid) - cpuBefore[0], cpuSeconds(pair.replica.pid) - cpuBefore[1]]
      const ackedInWindow = writer.acked - ackedBefore
      sampling = false
      await sampler
      await writer.stop()
      const check = await converged(pair)
      return {
        kind,
        achievedRate: ackedInWindow / windowSeconds,
        writerErrors: writer.errors,
        lag: summarize(lags),
        firstPollShare: lags.length === 0 ? NaN : firstPoll / lags.length,
        probeSetRtt: summarize(setRtts),
        timeouts,
        exportedPrimary: kind === 'shard' ? summarize(exportedPrimary) : null,
        exportedReplica: kind === 'shard' ? summarize(exportedReplica) : null,
        primaryCpuShare: cpu[0] / windowSeconds,
        replicaCpuShare: cpu[1] / windowSeconds,
        primaryCpuPerWrite: (cpu[0] / ackedInWindow) * 1e6,
        replicaCpuPerWrite: (cpu[1] / ackedInWindow) * 1e6,
        check,
        warnings: `primary ${warnings(primary)}; replica ${warnings(pair.replica)}`,
      }
    } finally {
      writerClient.close()
      probeWriter.close()
      probeReader.close()
    }
  } finally {
    await Promise.all([stopServer(primary), pair ? stopServer(pair.replica) : Promise.resolve()])
  }
}

// ---------------------------------------------------------------- full resync

/** GETs random keys of the primary one at a time, recording when each answer came and how long it took. */
class Reader {
  readonly at: number[] = []
  readonly latency: number[] = []
  errors = 0
  private running = true
  private readonly done: Promise<void>

  constructor(client: RespClient, items: number) {
    this.done = (async () => {
      while (this.running) {
        const started = performance.now()
        let broken = false
        const reply = await client.pipeline([['GET', `key:${Math.floor(Math.random() * items)}`]]).then(([r]) => r, () => {
          broken = true
          return null
        })
        const now = performance.now()
        if (broken) {
          // A broken connection: stop rather than spin on instant rejections.
          this.errors++
          break
        }
        if (!Buffer.isBuffer(reply)) this.errors++
        this.at.push(now)
        this.latency.push(now - started)
      }
    })()
  }

  async stop(): Promise<void> {
    this.running = false
    await this.done
  }

  /** The reads answered in [from, to]. */
  between(from: number, to: number): { count: number; latency: Summary } {
    const latencies: number[] = []
    for (let i = 0; i < this.at.length; i++) if (this.at[i] >= from && this.at[i] <= to) latencies.push(this.latency[i])
    return { count: latencies.length, latency: summarize(latencies) }
  }
}

async function fill(server: RunningServer, items: number): Promise<number> {
  const started = performance.now()
  const clients = await Promise.all(Array.from({ length: FILL_IN_FLIGHT }, () => RespClient.connect(server.port)))
  try {
    let next = 0
    await Promise.all(clients.map(async (client) => {
      while (next < items) {
        const from = next
        const to = Math.min(items, from + FILL_BATCH)
        next = to
        const commands: string[][] = []
        for (let i = from; i < to; i++) commands.push(['SET', `key:${i}`, `value:${i}:`.padEnd(VALUE_BYTES, 'x')])
        const replies = await client.pipeline(commands)
        const bad = replies.find((reply) => reply !== 'OK')
        if (bad !== undefined) throw new Error(`fill: SET answered ${String(bad)}`)
      }
    }))
  } finally {
    for (const client of clients) client.close()
  }
  const size = await dbsize(server)
  if (size !== items) throw new Error(`fill: DBSIZE ${size}, wanted ${items}`)
  return (performance.now() - started) / 1000
}

interface ResyncRun {
  kind: Kind
  fillSeconds: number
  /** From the replica's SYNC (shard: its ready line; redis: REPLICAOF) to in sync with every item. */
  syncSeconds: number
  /** From spawning the replica process. */
  spawnSeconds: number
  /** Shardline's own lastFullSync.seconds (FULLSYNC received to snapshot applied). */
  reportedSeconds: number
  reportedRecords: number
  replicaItems: number
  baseline: { count: number; latency: Summary; seconds: number }
  during: { count: number; latency: Summary }
  readErrors: number
  /** Full and partial syncs as the servers count them, measured before the content check. */
  syncs: string
  primaryCpu: number
  replicaCpu: number
  check: string
  warnings: string
}

async function measureResync(kind: Kind): Promise<ResyncRun> {
  const primary = await startPrimary(kind)
  let pair: Pair | null = null
  let reader: Reader | null = null
  let readerClient: RespClient | null = null
  try {
    const fillSeconds = await fill(primary, ITEMS)
    await sleep(1000)
    readerClient = await RespClient.connect(primary.port)
    reader = new Reader(readerClient, ITEMS)
    const baselineFrom = performance.now()
    await sleep(1000)
    const baselineTo = performance.now()
    const primaryCpuBefore = cpuSeconds(primary.pid)
    pair = await startReplica(kind, primary)
    const replicaCpuBefore = cpuSeconds(pair.replica.pid)
    const doneAt = await waitSynced(pair, 300_000, DONE_POLL_MS)
    const primaryCpu = cpuSeconds(primary.pid) - primaryCpuBefore
    const replicaCpu = cpuSeconds(pair.replica.pid) - replicaCpuBefore
    await reader.stop()
    const during = reader.between(pair.syncAt, doneAt)
    const baseline = { ...reader.between(baselineFrom, baselineTo), seconds: (baselineTo - baselineFrom) / 1000 }
    const replicaItems = await dbsize(pair.replica)
    let reportedSeconds = NaN
    let reportedRecords = NaN
    let syncs = ''
    if (kind === 'shard') {
      const upstream = replicationOf(await getStats(pair.replica)).upstream as Json
      const last = upstream.lastFullSync as { records: number; seconds: number }
      reportedSeconds = last.seconds
      reportedRecords = last.records
      const served = replicationOf(await getStats(primary)).served as Json
      syncs = `replica received ${String(upstream.fullSyncs)} full / ${String(upstream.partialSyncs)} partial syncs, primary served ${String(served.fullSyncs)} full, dropped ${JSON.stringify(served.dropped)}`
    } else {
      const client = await RespClient.connect(primary.port)
      try {
        const info = parseInfo(await client.commandText('INFO', 'stats'))
        syncs = `primary served ${info.sync_full} full / ${info.sync_partial_ok} partial syncs`
      } finally {
        client.close()
      }
    }
    return {
      kind,
      fillSeconds,
      syncSeconds: (doneAt - pair.syncAt) / 1000,
      spawnSeconds: (doneAt - pair.spawnAt) / 1000,
      reportedSeconds,
      reportedRecords,
      replicaItems,
      baseline,
      during,
      readErrors: reader.errors,
      syncs,
      primaryCpu,
      replicaCpu,
      check: await converged(pair),
      warnings: `primary ${warnings(primary)}; replica ${warnings(pair.replica)}`,
    }
  } finally {
    await reader?.stop()
    readerClient?.close()
    await Promise.all([stopServer(primary), pair ? stopServer(pair.replica) : Promise.resolve()])
  }
}

// ---------------------------------------------------------------- main

function reportLag(runs: Record<Kind, LagRun>): string {
  const { shard, redis } = runs
  const row = (label: string, pick: (run: LagRun) => number, digits = 2): Array<string | number> =>
    [label, ms(pick(shard), digits), ms(pick(redis), digits), ratio(pick(shard), pick(redis))]
  const lines = [
    `Replication lag at ${RATE} writes/s (${VALUE_BYTES}-byte values, ${WRITER_KEYSPACE} keys), ${LAG_SECONDS} s measured after ${WARMUP_SECONDS} s warm-up; probe every ${PROBE_INTERVAL_MS} ms`,
    '(lag = primary OK of SET probe:<n> → first GET on the replica that finds it; GETs back to back, one in flight)\n',
    formatTable(['measure', 'shardline', 'redis', 'shardline / redis'], [
      row('writes/s achieved', (r) => r.achievedRate, 0),
      row('lag samples', (r) => r.lag.n, 0),
      row('lag p50 ms', (r) => r.lag.p50, 3),
      row('lag p90 ms', (r) => r.lag.p90, 3),
      row('lag p99 ms', (r) => r.lag.p99, 3),
      row('lag max ms', (r) => r.lag.max, 3),
      row('samples seen on the first GET %', (r) => r.firstPollShare * 100, 1),
      row('probe SET round trip p99 ms', (r) => r.probeSetRtt.p99, 3),
      row('primary CPU % of a core', (r) => r.primaryCpuShare * 100, 1),
      row('replica CPU % of a core', (r) => r.replicaCpuShare * 100, 1),
      row('primary CPU µs/write', (r) => r.primaryCpuPerWrite, 1),
      row('replica CPU µs/write', (r) => r.replicaCpuPerWrite, 1),
    ]),
    '',
    `shardline's exported lag, /stats every ${STATS_INTERVAL_MS} ms during the same window (ms):\n`,
    formatTable(['source', 'samples', 'p50', 'p90', 'p99', 'max'], [
      ['probe-measured (above)', shard.lag.n, ms(shard.lag.p50, 3), ms(shard.lag.p90, 3), ms(shard.lag.p99, 3), ms(shard.lag.max, 3)],
      ...([['primary peers[0].lag.seconds', shard.exportedPrimary], ['replica upstream.lag.seconds', shard.exportedReplica]] as const).map(([label, s]) =>
        [label, s?.n ?? 0, ms(s?.p50 ?? NaN, 3), ms(s?.p90 ?? NaN, 3), ms(s?.p99 ?? NaN, 3), ms(s?.max ?? NaN, 3)]),
    ]),
    '',
    `probe timeouts (> ${PROBE_TIMEOUT_MS} ms): shardline ${shard.timeouts}, redis ${redis.timeouts}; writer errors: shardline ${shard.writerErrors}, redis ${redis.writerErrors}`,
    `after the writes: shardline ${shard.check}; redis ${redis.check}`,
    `shardline log warnings: ${shard.warnings}`,
  ]
  const met = shard.lag.p99 <= LAG_TARGET_MS && shard.timeouts === 0
  lines.push(`\nTarget lag p99 <= ${LAG_TARGET_MS} ms at ${RATE} writes/s: shardline p99 ${ms(shard.lag.p99, 3)} ms at ${shard.achievedRate.toFixed(0)} writes/s → ${met ? 'met' : 'NOT met'} (redis p99 ${ms(redis.lag.p99, 3)} ms at ${redis.achievedRate.toFixed(0)} writes/s, ratio ${ratio(shard.lag.p99, redis.lag.p99)})`)
  return lines.join('\n')
}

function reportResync(runs: Record<Kind, ResyncRun>): string {
  const { shard, redis } = runs
  const row = (label: string, pick: (run: ResyncRun) => number, digits = 2): Array<string | number> =>
    [label, ms(pick(shard), digits), ms(pick(redis), digits), ratio(pick(shard), pick(redis))]
  const lines = [
    `Full resync of ${ITEMS} items (${VALUE_BYTES}-byte values) to an empty replica, while one reader GETs random keys from the primary (one in flight)\n`,
    formatTable(['measure', 'shardline', 'redis', 'shardline / redis'], [
      row('fill s (pipelined SETs, not part of the target)', (r) => r.fillSeconds),
      row('sync s: SYNC → replica has every item', (r) => r.syncSeconds),
      row('replica-reported s (lastFullSync.seconds)', (r) => r.reportedSeconds),
      row('s from spawning the replica', (r) => r.spawnSeconds),
      row('primary CPU s during the sync', (r) => r.primaryCpu),
      row('replica CPU s during the sync', (r) => r.replicaCpu),
      row('reads served during the sync', (r) => r.during.count, 0),
      row('reads/s during the sync', (r) => r.during.count / r.syncSeconds, 0),
      row('reads/s before (1 s baseline)', (r) => r.baseline.count / r.baseline.seconds, 0),
      row('read p50 ms during', (r) => r.during.latency.p50, 3),
      row('read p99 ms during', (r) => r.during.latency.p99, 3),
      row('read max ms during', (r) => r.during.latency.max, 1),
      row('read p99 ms before', (r) => r.baseline.latency.p99, 3),
    ]),
    '',
    `replica items: shardline ${shard.replicaItems} (snapshot records ${shard.reportedRecords}), redis ${redis.replicaItems}; read errors: shardline ${shard.readErrors}, redis ${redis.readErrors}`,
    `syncs: shardline ${shard.syncs}; redis ${redis.syncs}`,
    `after the sync: shardline ${shard.check}; redis ${redis.check}`,
    `shardline log warnings: ${shard.warnings}`,
  ]
  const met = shard.syncSeconds <= RESYNC_TARGET_S && shard.replicaItems === ITEMS
  lines.push(`\nTarget full resync of ${ITEMS} items <= ${RESYNC_TARGET_S} s with the primary answering reads: shardline ${ms(shard.syncSeconds)} s (replica-reported ${ms(shard.reportedSeconds)} s), ${shard.during.count} reads served, p99 ${ms(shard.during.latency.p99, 3)} ms, max ${ms(shard.during.latency.max, 1)} ms → ${met ? 'met' : 'NOT met'} (redis ${ms(redis.syncSeconds)} s, ${redis.during.count} reads, p99 ${ms(redis.during.latency.p99, 3)} ms, max ${ms(redis.during.latency.max, 1)} ms)`)
  return lines.join('\n')
}

async function main(): Promise<void> {
  const started = Date.now()
  console.log(`code: ${codeVersion()}`)
  console.log(`node bench/replication.ts --lag-seconds ${LAG_SECONDS} --warmup-seconds ${WARMUP_SECONDS} --rate ${RATE} --items ${ITEMS} --probe-interval-ms ${PROBE_INTERVAL_MS} --first ${KINDS[0]} --phase ${PHASE}`)
  console.log(`shard primary: --max-memory ${MAX_MEMORY}, no --replicas; replica: --max-memory ${MAX_MEMORY} --replicaof. redis: diskless sync, repl-diskless-sync-delay 0, replica repl-diskless-load disabled (temp dir). load average ${loadAverage()}\n`)
  try {
    if (PHASE !== 'resync') {
      const runs = {} as Record<Kind, LagRun>
      for (const kind of KINDS) {
        runs[kind] = await measureLag(kind)
        console.log(`  lag ${kind}: p50 ${ms(runs[kind].lag.p50, 3)} p99 ${ms(runs[kind].lag.p99, 3)} ms at ${runs[kind].achievedRate.toFixed(0)} writes/s; load average ${loadAverage()}`)
      }
      console.log(`\n${reportLag(runs)}\n`)
    }
    if (PHASE !== 'lag') {
      const runs = {} as Record<Kind, ResyncRun>
      for (const kind of KINDS) {
        runs[kind] = await measureResync(kind)
        console.log(`  resync ${kind}: ${ms(runs[kind].syncSeconds)} s, ${runs[kind].during.count} reads during; load average ${loadAverage()}`)
      }
      console.log(`\n${reportResync(runs)}\n`)
    }
    console.log(`total time ${((Date.now() - started) / 1000).toFixed(0)} s; load average at the end ${loadAverage()} (2 cores: above ~2.5 means other work competed)`)
  } finally {
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  }
}

runMain(main)
