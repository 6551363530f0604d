// bench/client.ts's load generator, run in the benchmark process itself: a closed loop of N callers, each
// issuing its next op the moment the last one answers, with each op's latency and the CPU the run cost.
import { performance } from 'node:perf_hooks'
import { cpuSeconds } from '../lib.ts'
import { percentile } from '../router/measure.ts'
import { KEY_COUNT, keyName, valueFor } from '../router/keys.ts'
import type { Contender } from './contenders.ts'

/** Ops that are SETs of the key's own value (so every GET still reads it back); the rest are GETs. */
export const SET_PERCENT = 10

export interface LoopRun {
  /** Ops that succeeded, and per second of the run (from the first op to the last answer). */
  ops: number
  opsPerSecond: number
  p50Ms: number
  p99Ms: number
  /** CPU microseconds per op of this process (the contender plus the loop) and of the servers the contender uses. */
  clientCpuMicros: number
  serverCpuMicros: number
  /** Ops done per CPU second of client and servers together. */
  opsPerCpuSecond: number
  errors: number
  /** GETs that answered something other than the key's value (a miss included). */
  wrong: number
  firstError: string | undefined
}

// Built once, so the loop allocates nothing of its own per op: what is measured is the contender.
const keys = Array.from({ length: KEY_COUNT }, (_, i) => keyName(i))
const values = Array.from({ length: KEY_COUNT }, (_, i) => valueFor(i))

/** Runs `inFlight` callers against the contender for `seconds` (each finishes its op in flight at the end). */
export async function runClosedLoop(contender: Contender, inFlight: number, seconds: number): Promise<LoopRun> {
  const latencies: number[] = []
  let errors = 0
  let wrong = 0
  let firstError: string | undefined
  const deadline = performance.now() + seconds * 1000
  const caller = async () => {
    while (performance.now() < deadline) {
      const i = Math.floor(Math.random() * KEY_COUNT)
      const isSet = Math.random() * 100 < SET_PERCENT
      const started = performance.now()
      try {
        if (isSet) await contender.set(keys[i], values[i])
        else if ((await contender.get(keys[i])) !== values[i]) wrong++
        latencies.push(performance.now() - started)
      } catch (error) {
        errors++
        firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      }
    }
  }
  const cpu = () => ({ client: cpuSeconds(process.pid), servers: contender.serverPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) })
  const cpuBefore = cpu()
  const started = performance.now()
  await Promise.all(Array.from({ length: inFlight }, caller))
  const wall = (performance.now() - started) / 1000
  const cpuAfter = cpu()
  const sorted = Float64Array.from(latencies).sort()
  const ops = sorted.length
  const clientCpu = cpuAfter.client - cpuBefore.client
  const serverCpu = cpuAfter.servers - cpuBefore.servers
  return {
    ops,
    opsPerSecond: ops / wall,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    clientCpuMicros: (clientCpu / ops) * 1e6,
    serverCpuMicros: (serverCpu / ops) * 1e6,
    opsPerCpuSecond: ops / (clientCpu + serverCpu),
    errors,
    wrong,
    firstError,
  }
}
