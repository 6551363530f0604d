// Router HTTP: wrk GET (and 90/10 GET/SET) req/s of random keys through one router over 3 shards vs HAProxy (1 thread,
// balance uri) over the shards' /keys API vs one shard's /keys direct, medians of 3 rounds; p50/p99 at half the router's peak.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { cpuSeconds, formatTable, freePort, HOST, loadAverage, median, REPO_ROOT, runMain, startShard, type RunningServer } from './lib.ts'
import { checkReads, closeAgent, KEY_COUNT, loadThroughKeysApi, loadThroughRouter, VALUE_BYTES } from './router/keys.ts'
import { ioSyscalls, machineJiffies, mainThreadSchedule, reapedChildrenCpuSeconds } from './router/measure.ts'
import { runTool, startHaproxy, startRouter, type Backend } from './router/processes.ts'
import { GET_SCRIPT, MIXED_SCRIPT, runWrk, type WrkCounts } from './router/wrk.ts'

const SHARDS = 3
const CONNECTIONS = 32
const THREADS = 2
// --quick: a smoke test of the whole pipeline (2-second runs, one round); its numbers mean little.
const QUICK = process.argv.includes('--quick')
const DURATION_S = QUICK ? 2 : 10
const WARMUP_S = QUICK ? 1 : 3
const ROUNDS = QUICK ? 1 : 3
const SET_PERCENT = 10
const TARGET_RATIO = 1.2
const TARGET_P99_MS = 2
const AUTOCANNON_GET = fileURLToPath(new URL('./router/autocannon-get.ts', import.meta.url))
const PACED_GET = fileURLToPath(new URL('./router/paced-get.ts', import.meta.url))

type TargetId = 'router' | 'haproxy' | 'shard'

interface Target {
  id: TargetId
  label: string
  port: number
  /** Path before the key: /key: for the router, /keys/key: for the shards' admin API. */
  prefix: string
}

/** CPU used during one run, in cores (CPU seconds per wall second). */
interface CpuUse {
  router: number
  shards: number
  haproxy: number
  loadGenerator: number
  machine: number
  /** Wall seconds the sample covered. */
  wall: number
  /** read- and write-like system calls made meanwhile (from /proc/<pid>/io; HAProxy's recv/send are not counted there). */
  syscalls: { router: number; shards: number }
  /** Fraction of the wall time the router's main (JavaScript) thread ran, and waited runnable for a CPU. */
  routerThread: { running: number; waiting: number }
}

interface WrkRun extends WrkCounts {
  cpu: CpuUse
}

interface LatencyRun {
  rps: number
  total: number
  non2xx: number
  errors: number
  p50: number
  p99: number
  p999: number
  max: number
  /** autocannon's own percentiles (whole milliseconds, corrected for coordinated omission). */
  autocannonP50?: number
  autocannonP99?: number
  /** Paced runs: from when each request was written rather than when it was due. */
  sentP50?: number
  sentP99?: number
  cpu: CpuUse
}

const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 10_000 }).trim()) || 100

/** Pids whose CPU is sampled around each run. */
interface Pids {
  router: number
  shards: number[]
  haproxy: number
}

/** Runs `body` (which runs one load generator to completion) and reports the CPU each part used meanwhile. */
async function withCpu<T>(pids: Pids, body: () => Promise<T>): Promise<{ result: T; cpu: CpuUse }> {
  const sample = () => ({
    at: performance.now(),
    router: cpuSeconds(pids.router),
    shards: pids.shards.reduce((sum, pid) => sum + cpuSeconds(pid), 0),
    haproxy: cpuSeconds(pids.haproxy),
    children: reapedChildrenCpuSeconds(clockTicks),
    machine: machineJiffies(),
    routerThread: mainThreadSchedule(pids.router),
    syscalls: {
      router: ioSyscalls(pids.router),
      shards: pids.shards.reduce((sum, pid) => sum + ioSyscalls(pid), 0),
    },
  })
  const before = sample()
  const result = await body()
  const after = sample()
  const wall = (after.at - before.at) / 1000
  const machine = ((after.machine.busy - before.machine.busy) / (after.machine.total - before.machine.total)) * cpuCount()
  return {
    result,
    cpu: {
      router: (after.router - before.router) / wall,
      shards: (after.shards - before.shards) / wall,
      haproxy: (after.haproxy - before.haproxy) / wall,
      loadGenerator: (after.children - before.children) / wall,
      machine,
      wall,
      routerThread: {
        running: (after.routerThread.running - before.routerThread.running) / wall,
        waiting: (after.routerThread.waiting - before.routerThread.waiting) / wall,
      },
      syscalls: {
        router: after.syscalls.router - before.syscalls.router,
        shards: after.syscalls.shards - before.syscalls.shards,
      },
    },
  }
}

function cpuCount(): number {
  return readFileSync('/proc/stat', 'utf8').split('\n').filter((line) => /^cpu\d+ /.test(line)).length
}

async function wrk(pids: Pids, target: Target, script: string, scriptArgs: string[], seconds: number): Promise<WrkRun> {
  const load = { threads: THREADS, connections: CONNECTIONS, seconds, script, scriptArgs }
  const { result, cpu } = await withCpu(pids, () => runWrk(target.id, target.port, target.prefix, load))
  return { ...result, cpu }
}

async function latencyRun(pids: Pids, tool: 'autocannon' | 'paced', target: Target, rate: number): Promise<LatencyRun> {
  const common = ['--prefix', target.prefix, '--keys', String(KEY_COUNT), '--rate', String(rate), '--duration', String(DURATION_S), '--connections', String(CONNECTIONS)]
  const args = tool === 'autocannon' ? [AUTOCANNON_GET, '--url', `http://${HOST}:${target.port}`, ...common] : [PACED_GET, '--port', String(target.port), ...common]
  const { result: output, cpu } = await withCpu(pids, () => runTool(`${tool} ${target.id}`, process.execPath, args, (DURATION_S + 30) * 1000))
  const line = output.trim().split('\n').pop() ?? ''
  return { ...(JSON.parse(line) as Omit<LatencyRun, 'cpu'>), cpu }
}

function codeVersion(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 })
    const head = git('rev-parse', '--short', 'HEAD').trim()
    const dirty = git('status', '--porcelain', '--', 'router', 'shard', 'common', 'cli').split('\n').filter(Boolean).map((line) => line.slice(3))
    return dirty.length === 0 ? head : `${head} + uncommitted changes in ${dirty.join(', ')}`
  } catch {
    return 'unknown (git unavailable)'
  }
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')
const ms = (n: number) => fmt(n, 2)
const yes = (ok: boolean) => (ok ? 'yes' : '**no**')

async function main(): Promise<void> {
  const started = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'shardline-router-http-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  try {
    const shards: RunningServer[] = []
    for (let i = 0; i < SHARDS; i++) shards.push(await startShard({ name: `s${i}`, maxMemory: '64mb' }))
    const backends: Backend[] = shards.map((shard, i) => ({ name: `s${i}`, port: shard.port, adminPort: Number(new URL(shard.adminUrl!).port) }))
    const router = await startRouter(dir, backends)
    const haproxy = await startHaproxy(dir, await freePort(), backends)
    // A server that dies mid-run is reported at once, with how it ended and its last output.
    let stopping = false
    for (const proc of [...shards.map((shard) => shard.proc), router.proc, haproxy.proc]) {
      void proc.exited.then(({ code, signal }) => {
        if (!stopping) console.error(`\n${proc.name} (pid ${proc.child.pid}) exited during the benchmark: code ${code}, signal ${signal}; last output:\n${proc.output()}`)
      })
    }
    const pids: Pids = { router: router.pid, shards: shards.map((shard) => shard.pid), haproxy: haproxy.pid }
    const haproxyVersion = execFileSync('/usr/sbin/haproxy', ['-v'], { encoding: 'utf8', timeout: 10_000 }).split('\n')[0]
    console.log(`code: ${codeVersion()}; node ${process.version}; ${haproxyVersion}`)
    console.log(`shards ${backends.map((b, i) => `${b.name} pid ${shards[i].pid} resp :${b.port} admin :${b.adminPort}`).join(', ')}`)
    console.log(`router pid ${router.pid} (1 process) http :${router.dataPort}; haproxy pid ${haproxy.pid} (nbthread 1: one process, one thread, like the one router process) :${haproxy.port}`)
    console.log(`machine: ${cpuCount()} CPUs, load average ${loadAverage()} at start`)

    const targets: Record<TargetId, Target> = {
      router: { id: 'router', label: '(a) router', port: router.dataPort, prefix: '/key:' },
      haproxy: { id: 'haproxy', label: '(b) HAProxy -> shards /keys', port: haproxy.port, prefix: '/keys/key:' },
      shard: { id: 'shard', label: '(c) shard s0 /keys direct', port: backends[0].adminPort, prefix: '/keys/key:' },
    }

    // Keys: through the router (batch API), through HAProxy (so each key is on the shard HAProxy
    // hashes it to) and all of them into s0 (which (c) reads). A key may live on two shards.
    let t = Date.now()
    await loadThroughRouter(router.dataPort)
    await loadThroughKeysApi(haproxy.port)
    await loadThroughKeysApi(targets.shard.port)
    for (const target of Object.values(targets)) await checkReads(target.port, target.prefix.slice(0, -'key:'.length), 200)
    closeAgent()
    console.log(`loaded ${KEY_COUNT} keys x ${VALUE_BYTES}-byte values via router batch, HAProxy and s0 in ${((Date.now() - t) / 1000).toFixed(1)} s; sampled reads check out`)

    // JIT warm-up, not measured.
    t = Date.now()
    for (const target of Object.values(targets)) await wrk(pids, target, GET_SCRIPT, [], WARMUP_S)

    // 3. GET peak: rounds interleave the targets, rotating the order.
    const order: TargetId[] = ['router', 'haproxy', 'shard']
    const getRuns: Record<TargetId, WrkRun[]> = { router: [], haproxy: [], shard: [] }
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < order.length; i++) {
        const id = order[(i + round) % order.length]
        const run = await wrk(pids, targets[id], GET_SCRIPT, [], DURATION_S)
        getRuns[id].push(run)
        console.log(`GET round ${round + 1} ${targets[id].label}: ${fmt(run.rps)} req/s (non-2xx ${run.non2xx}, socket errors ${run.socketErrors}; router ${fmt(run.cpu.router, 2)} / shards ${fmt(run.cpu.shards, 2)} / haproxy ${fmt(run.cpu.haproxy, 2)} / wrk ${fmt(run.cpu.loadGenerator, 2)} cores, machine ${fmt(run.cpu.machine, 2)}${id === 'router' ? `; router thread ran ${fmt(run.cpu.routerThread.running * 100)}%, waited for a CPU ${fmt(run.cpu.routerThread.waiting * 100)}%` : ''})`)
      }
    }
    const getMedian = (id: TargetId) => median(getRuns[id].map((run) => run.rps))

    // 4. Latency at a fixed rate: half of the router's median GET peak.
    const rate = Math.round(getMedian('router') / 2)
    const latency: Array<{ tool: string; target: Target; run: LatencyRun }> = []
    for (const tool of ['autocannon', 'paced'] as const) {
      // (c) at the same rate is the floor this machine allows: one Node HTTP process, no hop.
      for (const id of ['router', 'haproxy', 'shard'] as const) {
        const run = await latencyRun(pids, tool, targets[id], rate)
        latency.push({ tool, target: targets[id], run })
        console.log(`${tool} ${targets[id].label} at ${rate} req/s: ${fmt(run.rps)} req/s, p50 ${ms(run.p50)} ms, p99 ${ms(run.p99)} ms (non-2xx ${run.non2xx}, errors ${run.errors}; router ${fmt(run.cpu.router, 2)} cores)`)
      }
    }

    // 5. 90/10 GET/SET, router vs HAProxy.
    for (const id of ['router', 'haproxy'] as const) await wrk(pids, targets[id], MIXED_SCRIPT, [String(SET_PERCENT)], WARMUP_S)
    const mixedRuns: Record<'router' | 'haproxy', WrkRun[]> = { router: [], haproxy: [] }
    for (let round = 0; round < ROUNDS; round++) {
      for (const id of round % 2 === 0 ? (['router', 'haproxy'] as const) : (['haproxy', 'router'] as const)) {
        const run = await wrk(pids, targets[id], MIXED_SCRIPT, [String(SET_PERCENT)], DURATION_S)
        mixedRuns[id].push(run)
        console.log(`90/10 round ${round + 1} ${targets[id].label}: ${fmt(run.rps)} req/s (non-2xx ${run.non2xx}, socket errors ${run.socketErrors})`)
      }
    }
    const mixedMedian = (id: 'router' | 'haproxy') => median(mixedRuns[id].map((run) => run.rps))
    const measuredS = (Date.now() - t) / 1000

    // ---------------------------------------------------------------- report
    const allWrk = [...Object.values(getRuns).flat(), ...Object.values(mixedRuns).flat()]
    const bad = (runs: WrkRun[]) => `${runs.reduce((s, r) => s + r.non2xx, 0)} / ${runs.reduce((s, r) => s + r.socketErrors, 0)}`
    const getRatio = getMedian('router') / getMedian('haproxy')
    const mixedRatio = mixedMedian('router') / mixedMedian('haproxy')
    const serverCpuPerRequest = (runs: WrkRun[]) => median(runs.map((run) => ((run.cpu.router + run.cpu.shards + run.cpu.haproxy) * run.cpu.wall * 1e6) / run.requests))
    const rounds = (runs: WrkRun[]) => runs.map((run) => fmt(run.rps)).join(' / ')
    console.log(`\n## Router HTTP vs HAProxy (${SHARDS} shards, ${KEY_COUNT} keys, ${VALUE_BYTES}-byte values; wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION_S}s, random keys; median of ${ROUNDS} interleaved rounds)\n`)
    console.log(formatTable(
      ['Run', '(a) router', '(b) HAProxy -> shards /keys', '(c) one shard /keys', 'a/b', 'target', 'met'],
      [
        ['GET req/s (median)', fmt(getMedian('router')), fmt(getMedian('haproxy')), fmt(getMedian('shard')), fmt(getRatio, 2), `a/b >= ${TARGET_RATIO}`, yes(getRatio >= TARGET_RATIO)],
        ['GET req/s (rounds)', rounds(getRuns.router), rounds(getRuns.haproxy), rounds(getRuns.shard), '', '', ''],
        [`${100 - SET_PERCENT}/${SET_PERCENT} GET/SET req/s (median)`, fmt(mixedMedian('router')), fmt(mixedMedian('haproxy')), '-', fmt(mixedRatio, 2), '(none)', ''],
        [`${100 - SET_PERCENT}/${SET_PERCENT} GET/SET req/s (rounds)`, rounds(mixedRuns.router), rounds(mixedRuns.haproxy), '-', '', '', ''],
        // Less at the mercy of other tenants than req/s: what each path costs our processes per request.
        ['GET server-side CPU us/req (median)', fmt(serverCpuPerRequest(getRuns.router), 1), fmt(serverCpuPerRequest(getRuns.haproxy), 1), fmt(serverCpuPerRequest(getRuns.shard), 1), fmt(serverCpuPerRequest(getRuns.haproxy) / serverCpuPerRequest(getRuns.router), 2) + ' (b/a)', '', ''],
        [`${100 - SET_PERCENT}/${SET_PERCENT} server-side CPU us/req (median)`, fmt(serverCpuPerRequest(mixedRuns.router), 1), fmt(serverCpuPerRequest(mixedRuns.haproxy), 1), '-', fmt(serverCpuPerRequest(mixedRuns.haproxy) / serverCpuPerRequest(mixedRuns.router), 2) + ' (b/a)', '', ''],
        ['non-2xx / socket errors (all wrk runs)', bad([...getRuns.router, ...mixedRuns.router]), bad([...getRuns.haproxy, ...mixedRuns.haproxy]), bad(getRuns.shard), '', '0 / 0', yes(allWrk.every((r) => r.non2xx === 0 && r.socketErrors === 0))],
      ],
    ))

    console.log(`\n### Latency at a fixed ${rate} req/s (half of (a)'s median GET peak), ${CONNECTIONS} connections, ${DURATION_S} s, random keys\n`)
    console.log(formatTable(
      ['Load generator', 'target', 'achieved req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'also', 'non-2xx / errors', 'router / machine CPU (cores)', `p99 <= ${TARGET_P99_MS} ms`],
      latency.map(({ tool, target, run }) => [
        tool === 'autocannon' ? 'autocannon -R (exact times)' : 'paced open loop (from due)',
        target.label,
        fmt(run.rps),
        ms(run.p50),
        ms(run.p99),
        ms(run.p999),
        ms(run.max),
        tool === 'autocannon' ? `autocannon's p50/p99 ${run.autocannonP50} / ${run.autocannonP99}` : `from send p50/p99 ${ms(run.sentP50 ?? NaN)} / ${ms(run.sentP99 ?? NaN)}`,
        `${run.non2xx} / ${run.errors}`,
        `${fmt(run.cpu.router, 2)} / ${fmt(run.cpu.machine, 2)}`,
        target.id === 'router' ? yes(run.p99 <= TARGET_P99_MS) : '(comparison)',
      ]),
    ))

    console.log('\nautocannon -R keeps its rate per connection per 1-second window (each connection sends its quota back to back, then waits), so its')
    console.log('"fixed rate" comes in bursts; its times run from each write. The paced open loop issues request i at i/rate s (1 ms timer) and')
    console.log('times it from then, so when the system falls behind, the backlog shows in its numbers; "from send" leaves that out.')
    console.log(`\n### CPU during the timed wrk runs (cores; CPU microseconds and I/O syscalls per request; medians over rounds; the machine has ${cpuCount()} cores, shared)\n`)
    const cpuRow = (label: string, runs: WrkRun[]) => {
      const m = (pick: (run: WrkRun) => number) => median(runs.map(pick))
      const perRequest = (cores: (cpu: CpuUse) => number) => (run: WrkRun) => (cores(run.cpu) * run.cpu.wall * 1e6) / run.requests
      return [
        label,
        fmt(m((r) => r.cpu.router), 2),
        fmt(m((r) => r.cpu.shards), 2),
        fmt(m((r) => r.cpu.haproxy), 2),
        fmt(m((r) => r.cpu.loadGenerator), 2),
        fmt(m((r) => r.cpu.machine), 2),
        fmt(m(perRequest((c) => c.router)), 1),
        fmt(m(perRequest((c) => c.shards)), 1),
        fmt(m(perRequest((c) => c.haproxy)), 1),
        fmt(m(perRequest((c) => c.router + c.shards + c.haproxy)), 1),
        (['router', 'shards'] as const).map((part) => fmt(m((r) => r.cpu.syscalls[part] / r.requests), 2)).join(' / '),
        label.includes('router') ? `${fmt(m((r) => r.cpu.routerThread.running) * 100)}% / ${fmt(m((r) => r.cpu.routerThread.waiting) * 100)}%` : '-',
      ]
    }
    console.log(formatTable(
      ['Run', 'router', 'shards (3, sum)', 'haproxy', 'wrk', 'machine busy', 'router us/req', 'shards us/req', 'haproxy us/req', 'server side us/req', 'read+write syscalls/req: router / shards', 'router main thread: running / runnable, waiting for a CPU'],
      [
        cpuRow('GET (a) router', getRuns.router),
        cpuRow('GET (b) HAProxy', getRuns.haproxy),
        cpuRow('GET (c) shard s0', getRuns.shard),
        cpuRow('90/10 (a) router', mixedRuns.router),
        cpuRow('90/10 (b) HAProxy', mixedRuns.haproxy),
      ],
    ))
    console.log(`\nload average ${loadAverage()} at the end; load runs took ${measuredS.toFixed(0)} s, the whole benchmark ${((Date.now() - started) / 1000).toFixed(0)} s`)
    if (!allWrk.every((r) => r.non2xx === 0 && r.socketErrors === 0) || latency.some(({ run }) => run.non2xx > 0 || run.errors > 0)) {
      console.log('WARNING: some requests failed (non-2xx or socket errors): the numbers above are not clean')
      process.exitCode = 1
    }
    stopping = true
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

runMain(main)
