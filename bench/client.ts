// Client library: ops/s, p99 and CPU per op at 1, 64 and 1,000 ops in flight of (a) plain undici, (b) the client
// in HTTP mode, (c) the client in direct mode, (d) ioredis auto-pipelining on redis-server; medians of 3 interleaved rounds.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { codeVersion, formatTable, HOST, loadAverage, median, RespClient, runMain, startRedis, startShard, type RunningServer } from './lib.ts'
import { runClosedLoop, SET_PERCENT, type LoopRun } from './client/closed-loop.ts'
import { clientDirectMode, clientHttpMode, ioredisAutoPipelining, plainUndici, type Contender, type ContenderId, type ContenderSettings } from './client/contenders.ts'
import { checkReads, closeAgent, KEY_COUNT, keyName, loadThroughRouter, VALUE_BYTES, valueFor } from './router/keys.ts'
import { startRouter, type Backend } from './router/processes.ts'

// --quick: a smoke test of the whole pipeline (2-second cells, one round); its numbers mean little.
const QUICK = process.argv.includes('--quick')
const CELL_S = QUICK ? 2 : 10
const WARMUP_S = QUICK ? 1 : 3
const ROUNDS = QUICK ? 1 : 3
const IN_FLIGHT = [1, 64, 1000]
const SHARDS = 3
const SETTINGS: ContenderSettings = { connections: 16, opTimeoutMs: 5000 }
const CONTENDER_IDS: ContenderId[] = ['a', 'b', 'c', 'd']

/** A target of the issue: the median over rounds of top/bottom in `pick`, at `at` ops in flight, at least `min`. */
interface Target {
  label: string
  at: number
  top: ContenderId
  bottom: ContenderId
  pick: (run: LoopRun) => number
  min: number
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')
const yes = (ok: boolean) => (ok ? 'yes' : '**no**')

function cpuCount(): number {
  return readFileSync('/proc/stat', 'utf8').split('\n').filter((line) => /^cpu\d+ /.test(line)).length
}

function packageVersion(name: string): string {
  return (JSON.parse(readFileSync(join(import.meta.dirname, '..', 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
}

/** Stores every benchmark key in redis-server, 1000 SETs per pipelined write. */
async function loadRedis(server: RunningServer): Promise<void> {
  const client = await RespClient.connect(server.port)
  try {
    for (let start = 0; start < KEY_COUNT; start += 1000) {
      const commands: string[][] = []
      for (let i = start; i < Math.min(KEY_COUNT, start + 1000); i++) commands.push(['SET', keyName(i), valueFor(i)])
      const failed = (await client.pipeline(commands)).find((reply) => reply instanceof Error)
      if (failed) throw failed
    }
  } finally {
    client.close()
  }
}

async function main(): Promise<void> {
  const started = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'shardline-client-bench-'))
  const contenders: Contender[] = []
  let stopping = false
  try {
    const shards: RunningServer[] = []
    for (let i = 0; i < SHARDS; i++) shards.push(await startShard({ name: `s${i}`, maxMemory: '64mb' }))
    const backends: Backend[] = shards.map((shard, i) => ({ name: `s${i}`, port: shard.port, adminPort: Number(new URL(shard.adminUrl!).port) }))
    const router = await startRouter(dir, backends)
    const redis = await startRedis()
    // A server that dies mid-run is reported at once, with how it ended and its last output (not when Ctrl-C or a SIGTERM stops them all).
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => (stopping = true))
    for (const proc of [...shards.map((shard) => shard.proc), router.proc, redis.proc]) {
      void proc.exited.then(({ code, signal }) => {
        if (!stopping) console.error(`\n${proc.name} (pid ${proc.child.pid}) exited during the benchmark: code ${code}, signal ${signal}; last output:\n${proc.output()}`)
      })
    }
    const shardPids = shards.map((shard) => shard.pid)
    const routerUrl = `http://${HOST}:${router.dataPort}`
    const redisVersion = execFileSync('/usr/bin/redis-server', ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim()
    console.log(`code: ${codeVersion()}; node ${process.version}; undici ${packageVersion('undici')}; ioredis ${packageVersion('ioredis')}; ${redisVersion}`)
    console.log(`shards ${shards.map((shard, i) => `s${i} pid ${shard.pid} :${shard.port}`).join(', ')}; router pid ${router.pid} (1 process) http :${router.dataPort} admin :${router.adminPort}; redis-server pid ${redis.pid} :${redis.port}`)
    console.log(`machine: ${cpuCount()} CPUs, load average ${loadAverage()} at start`)

    let t = Date.now()
    await loadThroughRouter(router.dataPort)
    await checkReads(router.dataPort, '/', 200)
    closeAgent()
    await loadRedis(redis)
    console.log(`loaded ${KEY_COUNT} keys x ${VALUE_BYTES}-byte values through the router and into redis-server in ${((Date.now() - t) / 1000).toFixed(1)} s`)

    const routerAndShards = [router.pid, ...shardPids]
    contenders.push(
      plainUndici(routerUrl, routerAndShards, SETTINGS),
      clientHttpMode(routerUrl, routerAndShards, SETTINGS),
      clientDirectMode(`http://${HOST}:${router.adminPort}`, shardPids, SETTINGS),
      ioredisAutoPipelining(redis.port, redis.pid, SETTINGS),
    )
    const byId = new Map(contenders.map((contender) => [contender.id, contender]))

    // JIT warm-up, connections opened, topology read: not measured.
    t = Date.now()
    for (const contender of contenders) await runClosedLoop(contender, 64, WARMUP_S)

    // Rounds interleave the contenders, rotating their order, so drift on the shared machine hits all alike.
    const runs = new Map<string, LoopRun[]>()
    const cellRuns = (id: ContenderId, inFlight: number) => runs.get(`${id} ${inFlight}`) ?? []
    for (let round = 0; round < ROUNDS; round++) {
      for (const inFlight of IN_FLIGHT) {
        for (let i = 0; i < CONTENDER_IDS.length; i++) {
          const contender = byId.get(CONTENDER_IDS[(i + round) % CONTENDER_IDS.length])!
          const run = await runClosedLoop(contender, inFlight, CELL_S)
          runs.set(`${contender.id} ${inFlight}`, [...cellRuns(contender.id, inFlight), run])
          console.log(`round ${round + 1} ${String(inFlight).padStart(4)} in flight ${contender.label}: ${fmt(run.opsPerSecond)} ops/s, p99 ${fmt(run.p99Ms, 2)} ms, CPU ${fmt(run.clientCpuMicros, 1)} + ${fmt(run.serverCpuMicros, 1)} µs/op (client + servers)${run.errors + run.wrong > 0 ? `; ${run.errors} errors (first: ${run.firstError}), ${run.wrong} wrong reads` : ''}`)
        }
      }
    }
    const measuredS = (Date.now() - t) / 1000

    // ---------------------------------------------------------------- report
    const med = (id: ContenderId, inFlight: number, pick: (run: LoopRun) => number) => median(cellRuns(id, inFlight).map(pick))
    console.log(`\n## Client library: ${100 - SET_PERCENT}% GET / ${SET_PERCENT}% SET of ${KEY_COUNT} existing keys (uniform), ${VALUE_BYTES}-byte string values; closed loop of N callers in the benchmark process; ${CELL_S} s per cell, median of ${ROUNDS} interleaved rounds\n`)
    const rows: Array<Array<string | number>> = []
    for (const inFlight of IN_FLIGHT) {
      for (const contender of contenders) {
        const all = cellRuns(contender.id, inFlight)
        rows.push([
          inFlight,
          contender.label,
          fmt(med(contender.id, inFlight, (run) => run.opsPerSecond)),
          all.map((run) => fmt(run.opsPerSecond)).join(' / '),
          fmt(med(contender.id, inFlight, (run) => run.p50Ms), 2),
          fmt(med(contender.id, inFlight, (run) => run.p99Ms), 2),
          fmt(med(contender.id, inFlight, (run) => run.clientCpuMicros), 1),
          fmt(med(contender.id, inFlight, (run) => run.serverCpuMicros), 1),
          fmt(med(contender.id, inFlight, (run) => run.opsPerCpuSecond)),
          `${all.reduce((sum, run) => sum + run.errors, 0)} / ${all.reduce((sum, run) => sum + run.wrong, 0)}`,
        ])
      }
    }
    console.log(formatTable(['in flight', 'contender', 'ops/s', 'ops/s (rounds)', 'p50 ms', 'p99 ms', 'client CPU µs/op', 'servers CPU µs/op', 'ops per CPU s', 'errors / wrong reads'], rows))

    // Ratios within each round (its cells ran minutes apart at most), then their median.
    const ratio = (top: ContenderId, bottom: ContenderId, inFlight: number, pick: (run: LoopRun) => number) => {
      const perRound = cellRuns(top, inFlight).map((run, round) => pick(run) / pick(cellRuns(bottom, inFlight)[round]))
      return { median: median(perRound), rounds: perRound.map((r) => fmt(r, 2)).join(' / ') }
    }
    const targets: Target[] = [
      { label: '(b)/(a) ops/s at 1 in flight', at: 1, top: 'b', bottom: 'a', pick: (run: LoopRun) => run.opsPerSecond, min: 1 },
      { label: '(b)/(a) ops/s at 1000 in flight', at: 1000, top: 'b', bottom: 'a', pick: (run: LoopRun) => run.opsPerSecond, min: 3 },
      ...IN_FLIGHT.map((at): Target => ({ label: `(c)/(b) ops per CPU second at ${at} in flight`, at, top: 'c', bottom: 'b', pick: (run: LoopRun) => run.opsPerCpuSecond, min: 2 })),
    ]
    console.log(`\n### Targets (issue 13); CPU = this process (client + load loop) + the servers the contender uses: router + ${SHARDS} shards for (a) and (b), the shards for (c), redis-server for (d)\n`)
    console.log(formatTable(
      ['ratio', 'median', 'rounds', 'target', 'met'],
      targets.map((target) => {
        const { median: value, rounds } = ratio(target.top, target.bottom, target.at, target.pick)
        return [target.label, fmt(value, 2), rounds, `>= ${target.min}`, yes(value >= target.min)]
      }),
    ))

    console.log(`\nload average ${loadAverage()} at the end; timed runs took ${measuredS.toFixed(0)} s, the whole benchmark ${((Date.now() - started) / 1000).toFixed(0)} s`)
    if ([...runs.values()].flat().some((run) => run.errors > 0 || run.wrong > 0)) {
      console.log('WARNING: some ops failed or read a wrong value: the numbers above are not clean')
      process.exitCode = 1
    }
  } finally {
    stopping = true
    await Promise.allSettled(contenders.map((contender) => contender.close()))
    rmSync(dir, { recursive: true, force: true })
  }
}

runMain(main)
