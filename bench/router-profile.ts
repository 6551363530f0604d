// Router CPU per HTTP GET, steadier than req/s: wrk GETs of random keys through one router over 3 shards, and the router's
// CPU (utime + stime, all threads) per request; side by side with another checkout's router, and profiled with --cpu-prof.
//
//   npx node bench/router-profile.ts [--rounds 5] [--seconds 5] [--baseline /other/checkout/cli/shardline.ts] [--floor] [--profile | --perf] [--top 30]
//
// --baseline interleaves rounds of both routers over the same shards (ABBA order), so a busy machine
// weighs on both alike. --floor adds two servers that answer a fixed value and do nothing else, on bare
// node:http and on fastify: what HTTP alone costs on this machine, measured in the same rounds. --profile runs the router under test with --cpu-prof and prints self time per
// function and per file over the timed rounds only (its CPU figures then include the profiler's cost).
// V8's sampler counts a thread that waits for a CPU as time in its current frame (often a socket
// write that woke the reader), so --perf samples on-CPU time instead, kernel included: perf record
// of the router (run with --perf-basic-prof so JavaScript frames have names) during the timed rounds.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { cpuSeconds, formatTable, killProcess, loadAverage, median, runMain, spawnTracked, startShard, waitForOutput, type RunningServer, type TrackedProcess } from './lib.ts'
import { summariseProfile, type SelfTime } from './cpu-profile.ts'
import { checkReads, closeAgent, loadThroughRouter } from './router/keys.ts'
import { ioSyscalls } from './router/measure.ts'
import { runTool, startRouter, type Backend } from './router/processes.ts'
import { GET_SCRIPT, runWrk } from './router/wrk.ts'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    baseline: { type: 'string' },
    profile: { type: 'boolean', default: false },
    perf: { type: 'boolean', default: false },
    floor: { type: 'boolean', default: false },
    'profile-interval': { type: 'string', default: '250' },
    top: { type: 'string', default: '30' },
  },
  strict: true,
})
const ROUNDS = Number(values.rounds)
const SECONDS = Number(values.seconds)
const TOP = Number(values.top)
const SHARDS = 3
const FLOOR_SERVER = fileURLToPath(new URL('./router/floor-server.ts', import.meta.url))
const WARMUP_S = 5

interface Contender {
  label: string
  server: { pid: number; dataPort: number; proc: TrackedProcess }
  runs: Array<{ rps: number; requests: number; cpuMicrosPerRequest: number; syscallsPerRequest: number; failed: number }>
}

const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n)
const fmt = (n: number, digits = 1) => n.toFixed(digits)

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-router-profile-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const profileDir = join(dir, 'profile')
  const shards: RunningServer[] = []
  for (let i = 0; i < SHARDS; i++) shards.push(await startShard({ name: `s${i}`, maxMemory: '64mb' }))
  const backends: Backend[] = shards.map((shard, i) => ({ name: `s${i}`, port: shard.port, adminPort: Number(new URL(shard.adminUrl!).port) }))
  const routerDir = (name: string) => {
    const path = join(dir, name)
    mkdirSync(path)
    return path
  }
  const profileArgs = values.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-interval', values['profile-interval']] : values.perf ? ['--perf-basic-prof'] : []
  const contenders: Contender[] = [{ label: 'this checkout', server: await startRouter(routerDir('current'), backends, undefined, profileArgs), runs: [] }]
  if (values.baseline) contenders.push({ label: `baseline ${values.baseline}`, server: await startRouter(routerDir('baseline'), backends, values.baseline), runs: [] })
  // Both routers hash keys alike over the same shards: keys loaded through one are read through both.
  await loadThroughRouter(contenders[0].server.dataPort)
  for (const { server } of contenders) await checkReads(server.dataPort, '/', 100)
  closeAgent()
  if (values.floor) {
    for (const kind of ['node', 'fastify']) contenders.push({ label: `floor: bare ${kind === 'node' ? 'node:http' : 'fastify'}, fixed value`, server: await startFloorServer(kind), runs: [] })
  }
  console.log(`pids ${contenders.map((c) => `${c.label}: ${c.server.pid}`).join(', ')}; load average ${loadAverage()} at start`)

  const load = { threads: Number(values.threads), connections: Number(values.connections), script: GET_SCRIPT }
  for (const { label, server } of contenders) await runWrk(label, server.dataPort, '/key:', { ...load, seconds: WARMUP_S })
  const perfData = join(dir, 'perf.data')
  const perf = values.perf ? spawnTracked('perf record', '/usr/bin/perf', ['record', '-F', '1999', '-g', '-p', String(contenders[0].server.pid), '-o', perfData]) : null
  const from = monotonicMicros()
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? contenders : [...contenders].reverse()
    for (const contender of order) {
      const { pid } = contender.server
      const before = { cpu: cpuSeconds(pid), syscalls: ioSyscalls(pid) }
      const run = await runWrk(contender.label, contender.server.dataPort, '/key:', { ...load, seconds: SECONDS })
      const cpu = cpuSeconds(pid) - before.cpu
      const syscallsPerRequest = (ioSyscalls(pid) - before.syscalls) / run.requests
      contender.runs.push({ rps: run.rps, requests: run.requests, cpuMicrosPerRequest: (cpu * 1e6) / run.requests, syscallsPerRequest, failed: run.non2xx + run.socketErrors })
      console.log(`round ${round + 1} ${contender.label}: ${fmt(run.rps, 0)} req/s, ${fmt((cpu * 1e6) / run.requests)} us CPU and ${fmt(syscallsPerRequest, 2)} read/write syscalls per GET (non-2xx + socket errors ${run.non2xx + run.socketErrors})`)
    }
  }
  const to = monotonicMicros()
  if (perf) {
    perf.child.kill('SIGINT')
    await perf.exited
  }

  const medianOf = (contender: Contender, pick: (run: Contender['runs'][number]) => number) => median(contender.runs.map(pick))
  console.log(`\n## Router CPU per GET (wrk -t${load.threads} -c${load.connections}, ${SECONDS} s x ${ROUNDS} rounds, random keys; medians)\n`)
  console.log(formatTable(
    ['server', 'req/s', 'CPU us/GET', 'us/GET per round', 'read+write syscalls/GET', 'failed requests'],
    contenders.map((c) => [c.label, fmt(medianOf(c, (r) => r.rps), 0), fmt(medianOf(c, (r) => r.cpuMicrosPerRequest)), c.runs.map((r) => fmt(r.cpuMicrosPerRequest)).join(' / '), fmt(medianOf(c, (r) => r.syscallsPerRequest), 2), String(c.runs.reduce((sum, r) => sum + r.failed, 0))]),
  ))
  if (values.baseline) {
    const [current, baseline] = contenders
    // Rounds run back to back, so a round's pair shared the machine's load: the median of their ratios is the steadier figure.
    const pairRatios = current.runs.map((run, round) => run.cpuMicrosPerRequest / baseline.runs[round].cpuMicrosPerRequest)
    console.log(`\nthis / baseline: CPU per GET ${fmt(medianOf(current, (r) => r.cpuMicrosPerRequest) / medianOf(baseline, (r) => r.cpuMicrosPerRequest), 3)} (median of per-round ratios ${fmt(median(pairRatios), 3)}; rounds ${pairRatios.map((ratio) => fmt(ratio, 2)).join(' / ')}), req/s ${fmt(medianOf(current, (r) => r.rps) / medianOf(baseline, (r) => r.rps), 3)}`)
  }
  console.log(`load average ${loadAverage()} at the end`)

  if (perf) {
    const report = (sort: string) => runTool('perf report', '/usr/bin/perf', ['report', '-i', perfData, '--no-children', '--sort', sort, '--stdio', '-g', 'none', '--percent-limit', '0.3'], 120_000)
    const top = (text: string) => text.split('\n').filter((line) => /^\s+\d/.test(line)).slice(0, TOP).join('\n')
    console.log(`\n## perf: on-CPU samples of the router during the timed rounds, by binary (kernel, node, JIT code = perf-<pid>.map)\n`)
    console.log(top(await report('dso')))
    console.log(`\n### by symbol (top ${TOP})\n`)
    console.log(top(await report('dso,sym')))
    // The JIT symbol map node wrote for perf.
    rmSync(`/tmp/perf-${contenders[0].server.pid}.map`, { force: true })
  }

  if (values.profile) {
    // SIGTERM lets the router exit normally, which is when node writes the profile.
    await killProcess(contenders[0].server.proc, 10_000)
    const files = readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile'))
    if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${profileDir}, found ${files.join(', ') || 'none'}`)
    const summary = summariseProfile(join(profileDir, files[0]), from, to)
    const requests = contenders[0].runs.reduce((sum, run) => sum + run.requests, 0)
    const rows = (times: SelfTime[]) => times.slice(0, TOP).map(({ name, micros }) => [fmt((micros / summary.busyMicros) * 100), fmt(micros / requests, 2), name])
    console.log(`\n## Profile of the timed rounds: ${fmt(summary.busyMicros / 1e6, 2)} s sampled busy (${fmt(summary.busyMicros / requests, 2)} us per GET on the JS thread), ${fmt(summary.idleMicros / 1e6, 2)} s idle, ${requests} GETs\n`)
    console.log('### Self time by file or package\n')
    console.log(formatTable(['% busy', 'us/GET', 'file or package'], rows(summary.byFile)))
    console.log(`\n### Self time by function (top ${TOP})\n`)
    console.log(formatTable(['% busy', 'us/GET', 'function'], rows(summary.byFunction)))
  }
}

async function startFloorServer(kind: string): Promise<Contender['server']> {
  const proc = spawnTracked(`floor ${kind}`, process.execPath, [FLOOR_SERVER, kind])
  const [, port] = await waitForOutput(proc, /listening on (\d+)/, 30_000)
  if (proc.child.pid === undefined) throw new Error('floor server has no pid')
  return { pid: proc.child.pid, dataPort: Number(port), proc }
}

runMain(main)
