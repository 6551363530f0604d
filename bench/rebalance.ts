// Going 3 → 4 shards under a read-through workload (Zipf 1.0, a database behind the cache with a
// 2 ms fill): hit ratio, database reads and client latency per second without warm-up, with it, and
// with the rebalance job; a table, and bench/rebalance-hit-ratio.svg.
//
//   flock /tmp/bench.lock npx node bench/rebalance.ts [--keys 1000000] [--seconds 90] [--rate N]
//     [--change-at 25] [--job-delay 5] [--concurrency 64] [--job-rate N] [--runs A,B,C] [--quick]
//     [--svg bench/rebalance-hit-ratio.svg] [--series file.csv]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { codeVersion, cpuSeconds, formatTable, loadAverage, REPO_ROOT, runMain, sleep } from './lib.ts'
import { applyConfig, holders, prefill, routerConfig, startCluster, stopCluster, type Cluster, type PoolChange } from './rebalance/cluster.ts'
import { runRebalanceJob } from './rebalance/job.ts'
import { hitRatioSvg } from './rebalance/plot.ts'
import { summarize, type CpuSample, type RunRecord, type RunSummary } from './rebalance/summary.ts'
import { hitRatio, runReadThrough, type WorkloadOptions, type WorkloadResult } from './rebalance/workload.ts'
import { createRandom, requestStream, shuffledRanks, zipfCdf } from './zipf.ts'

const ZIPF_EXPONENT = 1.0
const FILL_MS = 2
const VALUE = Buffer.from('v'.repeat(100))
/** Without --rate: this share of the closed-loop peak measured on run A's cluster (the router must not saturate). */
const RATE_SHARE_OF_PEAK = 0.55
const CALIBRATION_MS = 5000
/** The job may not run longer than this (a stuck job fails the benchmark instead of hanging it). */
const JOB_TIMEOUT_MS = 10 * 60_000
/** Seconds the workload goes on after the job has finished. */
const AFTER_JOB_S = 3
/** Two clients may miss the same key while its fill is under way; a miss this long after the first is not that. */
const REFILL_GRACE_MS = 1000

interface RunSpec {
  name: string
  label: string
  change: PoolChange
  job: boolean
}

const RUNS: RunSpec[] = [
  { name: 'A', label: 'no warm-up (migration.windowMs 0)', change: { migration: { windowMs: 0 } }, job: false },
  { name: 'B', label: 'warm-up (default window)', change: {}, job: false },
  { name: 'C', label: 'warm-up + rebalance job', change: {}, job: true },
]

const { values } = parseArgs({
  options: {
    keys: { type: 'string' },
    seconds: { type: 'string' },
    rate: { type: 'string' },
    'change-at': { type: 'string' },
    'job-delay': { type: 'string' },
    concurrency: { type: 'string', default: '64' },
    'job-rate': { type: 'string' },
    runs: { type: 'string', default: 'A,B,C' },
    quick: { type: 'boolean', default: false },
    svg: { type: 'string', default: join(REPO_ROOT, 'bench/rebalance-hit-ratio.svg') },
    series: { type: 'string' },
    seed: { type: 'string', default: '1' },
  },
  strict: true,
})

/** A positive integer flag, its quick or full default otherwise. */
function flag(name: keyof typeof values, full: number, quick: number): number {
  const raw = values[name]
  if (raw === undefined) return values.quick ? quick : full
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${String(raw)}`)
  return n
}

const keyCount = flag('keys', 1_000_000, 50_000)
const runSeconds = flag('seconds', 90, 20)
const changeAtS = flag('change-at', 25, 8)
const jobDelayS = flag('job-delay', 5, 3)
const concurrency = flag('concurrency', 64, 64)
const jobRate = values['job-rate'] === undefined ? undefined : flag('job-rate', 0, 0)
const keyName = (i: number) => `key:${i}`
const runs = values.runs.split(',').map((name) => {
  const spec = RUNS.find((run) => run.name === name.trim().toUpperCase())
  if (!spec) throw new Error(`--runs: unknown run ${name} (runs: ${RUNS.map((run) => run.name).join(', ')})`)
  return spec
})
if (changeAtS >= runSeconds) throw new Error('--change-at must be before the end of the run (--seconds)')

/** A started cluster with every key stored under the three-shard ring. */
async function warmCluster(dir: string): Promise<Cluster> {
  const cluster = await startCluster(dir)
  const before = routerConfig(cluster, 3)
  await applyConfig(cluster, before)
  const started = performance.now()
  await prefill(cluster, before, keyCount, keyName, VALUE)
  console.log(`  pre-filled ${keyCount} keys in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  return cluster
}

/** The closed-loop peak of this client through the router (every GET a hit), in requests per second. */
async function closedLoopPeak(cluster: Cluster, stream: Int32Array): Promise<number> {
  const closedLoop = (ms: number) => runReadThrough({ port: cluster.router.dataPort, stream, keyName, value: VALUE, rate: Infinity, concurrency, fillMs: FILL_MS, done: (elapsed) => elapsed >= ms })
  // The first second warms the JIT and opens the connections.
  await closedLoop(1000)
  const measured = await closedLoop(CALIBRATION_MS)
  return measured.seconds.reduce((n, s) => n + s.requests, 0) / (CALIBRATION_MS / 1000)
}

async function runOne(spec: RunSpec, cluster: Cluster, stream: Int32Array, rate: number): Promise<RunRecord> {
  const load: [number, number] = [loadAverage(), NaN]
  const startedAt = performance.now()
  const elapsed = () => performance.now() - startedAt
  const cpu: CpuSample[] = []
  const sampleCpu = () => cpu.push({ at: elapsed(), router: cpuSeconds(cluster.router.pid), shards: cluster.shards.reduce((total, shard) => total + cpuSeconds(shard.pid), 0) })
  sampleCpu()
  const sampler = setInterval(sampleCpu, 1000)

  let changeAt = NaN
  let reloadedAt = NaN
  let job: RunRecord['job']
  let jobRunning = spec.job
  let failure: Error | null = null
  const change = (async () => {
    await sleep(changeAtS * 1000 - elapsed())
    changeAt = elapsed()
    await applyConfig(cluster, routerConfig(cluster, 4, spec.change))
    reloadedAt = elapsed()
    if (!spec.job) return
    await sleep(changeAt + jobDelayS * 1000 - elapsed())
    const jobStartedAt = elapsed()
    try {
      const result = await runRebalanceJob(cluster.configFile, jobRate, JOB_TIMEOUT_MS)
      job = { startedAt: jobStartedAt, endedAt: elapsed(), result }
    } finally {
      jobRunning = false
    }
  })().catch((error: unknown) => {
    failure = error as Error
    jobRunning = false
  })

  const options: WorkloadOptions = { port: cluster.router.dataPort, stream, keyName, value: VALUE, rate, concurrency, fillMs: FILL_MS, done: (ms) => failure !== null || (ms >= runSeconds * 1000 && !jobRunning && (job === undefined || ms >= job.endedAt + AFTER_JOB_S * 1000)) }
  const workload = await runReadThrough(options, startedAt)
  await change
  clearInterval(sampler)
  sampleCpu()
  load[1] = loadAverage()
  if (failure) throw failure
  const unexpected = unexpectedMisses(spec, workload.misses)
  if (unexpected.length > 0) {
    const samples = await Promise.all(unexpected.slice(0, 5).map(async ({ at, key }) => `${keyName(key)} at ${(at / 1000).toFixed(1)} s, now on [${(await holders(cluster, keyName(key))).join(', ')}]`))
    console.log(`  ${unexpected.length} unexpected misses, e.g. ${samples.join('; ')}`)
  }
  return { name: spec.name, label: spec.label, workload, changeAt, reloadedAt, job, cpu, load, unexpectedMisses: unexpected.length }
}

/**
 * Misses no run should have, since every key was pre-filled and nothing is evicted: with warm-up,
 * any miss; without, a key missing again over a second after its first miss (the client's SET of it was lost).
 */
function unexpectedMisses(spec: RunSpec, misses: WorkloadResult['misses']): WorkloadResult['misses'] {
  if (spec.change.migration?.windowMs !== 0) return misses
  const firstMiss = new Map<number, number>()
  return misses.filter(({ at, key }) => {
    const first = firstMiss.get(key)
    if (first === undefined) firstMiss.set(key, at)
    return first !== undefined && at - first > REFILL_GRACE_MS
  })
}

const fixed = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–')

/** The table the issue asks for. */
function table(summaries: RunSummary[]): string {
  return formatTable(
    ['run', 'steady hit %', 'lowest 1-s hit % after', 'drop (points)', 'DB reads/s peak', 'client p99 steady ms', 'p99 during job ms (× steady)', 'job keys/s moved', 'unexpected misses'],
    summaries.map((s) => [
      `${s.name}: ${s.label}`,
      fixed(s.steadyHit * 100, 2),
      `${fixed(s.lowestHit * 100, 2)} (s ${s.lowestAtSecond})`,
      fixed(s.dropPoints, 2),
      s.peakDbReads,
      fixed(s.steadyP99, 2),
      s.job ? `${fixed(s.jobP99, 2)} (${fixed(s.jobP99 / s.steadyP99, 2)}×)` : '–',
      s.job ? Math.round(s.job.movedPerSecond) : '–',
      s.unexpectedMisses,
    ]),
  )
}

/** What else each run measured. */
function detailTable(summaries: RunSummary[]): string {
  return formatTable(
    ['run', 'req/s steady', 's > 2 points below steady', 'DB reads after change', 'p50 steady ms', 'p99 10 s after change ms', 'router CPU µs/req steady / job', 'shard cores steady / job', 'errors', 'late sends', 'load average start → end'],
    summaries.map((s) => [
      s.name,
      fixed(s.steadyRate, 0),
      s.secondsBelow2Points,
      s.dbReadsAfter,
      fixed(s.steadyP50, 2),
      fixed(s.afterP99, 2),
      `${fixed(s.routerCpuSteady, 0)} / ${fixed(s.routerCpuJob, 0)}`,
      `${fixed(s.shardCoresSteady, 2)} / ${fixed(s.shardCoresJob, 2)}`,
      s.errors,
      s.late,
      `${s.load[0]} → ${s.load[1]}`,
    ]),
  )
}

function seriesCsv(records: RunRecord[]): string {
  const lines = ['run,second,requests,hits,misses,errors,late,hit_ratio']
  for (const record of records) {
    record.workload.seconds.forEach((s, i) => lines.push([record.name, i, s.requests, s.hits, s.misses, s.errors, s.late, hitRatio(s).toFixed(5)].join(',')))
  }
  return `${lines.join('\n')}\n`
}

runMain(async () => {
  console.log(`code: ${codeVersion()}`)
  console.log(`${keyCount} keys (${VALUE.length}-byte values), Zipf ${ZIPF_EXPONENT.toFixed(1)}, database fill ${FILL_MS} ms, ${concurrency} requests in flight; change at ${changeAtS} s of ${runSeconds} s; job ${jobDelayS} s after the change${jobRate ? ` at --rate ${jobRate}` : ''}`)
  const random = createRandom(Number(values.seed))
  const rankToKey = shuffledRanks(keyCount, random)
  const cdf = zipfCdf(keyCount, ZIPF_EXPONENT)
  let rate = values.rate === undefined ? NaN : flag('rate', 0, 0)
  let stream = requestStream(cdf, rankToKey, 200_000, random)
  const records: RunRecord[] = []
  for (const spec of runs) {
    console.log(`\nrun ${spec.name}: ${spec.label}`)
    // Every run on a fresh cluster in its own directory, removed however the run ends.
    const dir = mkdtempSync(join(tmpdir(), 'shardline-rebalance-'))
    try {
      const cluster = await warmCluster(dir)
      try {
        if (Number.isNaN(rate)) {
          const peak = await closedLoopPeak(cluster, stream)
          rate = Math.round((peak * RATE_SHARE_OF_PEAK) / 100) * 100
          if (rate <= 0) throw new Error(`closed-loop peak of ${peak} req/s: the router is not serving`)
          console.log(`  closed-loop peak ${Math.round(peak)} req/s with ${concurrency} in flight: offering ${rate} req/s (${Math.round(RATE_SHARE_OF_PEAK * 100)}%) to every run`)
        }
        if (stream.length < rate * runSeconds) stream = requestStream(cdf, rankToKey, Math.ceil(rate * runSeconds), createRandom(Number(values.seed) + 1))
        const record = await runOne(spec, cluster, stream, rate)
        records.push(record)
        const s = summarize(record)
        console.log(`  steady ${fixed(s.steadyRate, 0)} req/s, hit ${fixed(s.steadyHit * 100, 2)}%, lowest after ${fixed(s.lowestHit * 100, 2)}%, DB peak ${s.peakDbReads}/s, errors ${s.errors}${s.errors > 0 ? ` ${JSON.stringify(record.workload.errorKinds)}, first: ${s.firstError}` : ''}, late ${s.late}, load ${s.load.join(' → ')}; the router loaded the new config ${fixed(record.reloadedAt - record.changeAt, 0)} ms after it was written`)
        if (s.job) console.log(`  ${s.job.summaryLine} (job CPU ${fixed(s.job.cpuSeconds, 1)} s, ${fixed((s.job.cpuSeconds * 1e6) / Math.max(1, s.job.moved), 1)} µs per key moved)`)
      } finally {
        await stopCluster(cluster)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  const summaries = records.map(summarize)
  console.log(`\noffered ${rate} req/s, ${concurrency} in flight\n\n${table(summaries)}\n\n${detailTable(summaries)}`)
  writeFileSync(values.svg, hitRatioSvg(records, `Hit ratio per second, ${keyCount.toLocaleString('en')} keys Zipf 1.0, ${rate} req/s, 3 → 4 shards`))
  console.log(`wrote ${values.svg}`)
  if (values.series) writeFileSync(values.series, seriesCsv(records))
})
