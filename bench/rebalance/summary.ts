// What one run of bench/rebalance.ts comes to: steady state before the change, the worst second
// after it, database load, client latency steady vs while the job ran, router CPU per request.
import type { JobResult } from './job.ts'
import { hitRatio, latencyQuantile, type Second, type WorkloadResult } from './workload.ts'

/** Seconds after the change over which "p99 after the change" is taken. */
const AFTER_WINDOW_S = 10

export interface CpuSample {
  /** ms since the workload started. */
  at: number
  router: number
  shards: number
}

export interface RunRecord {
  name: string
  label: string
  workload: WorkloadResult
  /** ms since the workload started: the config write, and the router having loaded it. */
  changeAt: number
  reloadedAt: number
  job?: { startedAt: number; endedAt: number; result: JobResult }
  cpu: CpuSample[]
  /** 1-minute load average when the run started and ended. */
  load: [number, number]
  /** Misses of keys that should have been found (see bench/rebalance.ts). */
  unexpectedMisses: number
}

export interface RunSummary {
  name: string
  label: string
  unexpectedMisses: number
  /** Seconds [steadyFrom, changeSecond) are steady state. */
  steadyFrom: number
  changeSecond: number
  steadyRate: number
  steadyHit: number
  lowestHit: number
  lowestAtSecond: number
  dropPoints: number
  /** Seconds after the change whose hit ratio was more than 2 points below steady. */
  secondsBelow2Points: number
  steadyDbReads: number
  peakDbReads: number
  /** Database reads from the change to the end (the extra load the change cost, plus steady misses). */
  dbReadsAfter: number
  steadyP50: number
  steadyP99: number
  afterP99: number
  jobP99: number
  /** CPU µs per request of the router process. */
  routerCpuSteady: number
  routerCpuJob: number
  /** CPU of the four shard processes together, in cores (CPU seconds per second). */
  shardCoresSteady: number
  shardCoresJob: number
  late: number
  errors: number
  firstError: string | null
  job?: JobResult
  load: [number, number]
}

export function summarize(run: RunRecord): RunSummary {
  const seconds = run.workload.seconds
  // The last second is cut short by the end of the run.
  const complete = seconds.slice(0, -1)
  const changeSecond = Math.floor(run.changeAt / 1000)
  const steadyFrom = Math.min(5, Math.floor(changeSecond / 3))
  const steady = complete.slice(steadyFrom, changeSecond)
  const after = complete.slice(changeSecond)
  const steadyHit = sum(steady, (s) => s.hits) / sum(steady, (s) => s.hits + s.misses)
  let lowestHit = Infinity
  let lowestAtSecond = -1
  after.forEach((second, i) => {
    const ratio = hitRatio(second)
    if (ratio < lowestHit) {
      lowestHit = ratio
      lowestAtSecond = changeSecond + i
    }
  })
  const jobFrom = run.job ? Math.floor(run.job.startedAt / 1000) : NaN
  const jobTo = run.job ? Math.ceil(run.job.endedAt / 1000) : NaN
  return {
    name: run.name,
    label: run.label,
    unexpectedMisses: run.unexpectedMisses,
    steadyFrom,
    changeSecond,
    steadyRate: sum(steady, (s) => s.requests) / steady.length,
    steadyHit,
    lowestHit,
    lowestAtSecond,
    dropPoints: (steadyHit - lowestHit) * 100,
    secondsBelow2Points: after.filter((s) => hitRatio(s) < steadyHit - 0.02).length,
    steadyDbReads: sum(steady, (s) => s.misses) / steady.length,
    peakDbReads: Math.max(...after.map((s) => s.misses)),
    dbReadsAfter: sum(after, (s) => s.misses),
    steadyP50: latencyQuantile(seconds, steadyFrom, changeSecond, 0.5),
    steadyP99: latencyQuantile(seconds, steadyFrom, changeSecond, 0.99),
    afterP99: latencyQuantile(seconds, changeSecond, changeSecond + AFTER_WINDOW_S, 0.99),
    jobP99: run.job ? latencyQuantile(seconds, jobFrom, jobTo, 0.99) : NaN,
    routerCpuSteady: cpuPerRequest(run, steadyFrom, changeSecond),
    routerCpuJob: run.job ? cpuPerRequest(run, jobFrom, jobTo) : NaN,
    shardCoresSteady: cores(run, steadyFrom, changeSecond, (c) => c.shards),
    shardCoresJob: run.job ? cores(run, jobFrom, jobTo, (c) => c.shards) : NaN,
    late: sum(seconds, (s) => s.late),
    errors: sum(seconds, (s) => s.errors),
    firstError: run.workload.firstError,
    job: run.job?.result,
    load: run.load,
  }
}

function sum(seconds: Second[], of: (second: Second) => number): number {
  return seconds.reduce((total, second) => total + of(second), 0)
}

/** The CPU samples nearest the ends of seconds [from, to). */
function cpuWindow(run: RunRecord, from: number, to: number): [CpuSample, CpuSample] {
  const nearest = (ms: number) => run.cpu.reduce((best, sample) => (Math.abs(sample.at - ms) < Math.abs(best.at - ms) ? sample : best))
  return [nearest(from * 1000), nearest(to * 1000)]
}

/** The router's CPU µs per request over seconds [from, to). */
function cpuPerRequest(run: RunRecord, from: number, to: number): number {
  const [start, end] = cpuWindow(run, from, to)
  const requests = sum(run.workload.seconds.slice(Math.round(start.at / 1000), Math.round(end.at / 1000)), (s) => s.requests)
  return ((end.router - start.router) * 1e6) / requests
}

/** CPU seconds per second over seconds [from, to). */
function cores(run: RunRecord, from: number, to: number, of: (sample: CpuSample) => number): number {
  const [start, end] = cpuWindow(run, from, to)
  return ((of(end) - of(start)) * 1000) / (end.at - start.at)
}
