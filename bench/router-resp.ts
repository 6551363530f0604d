// Router RESP: redis-benchmark GET and SET (no pipelining and -P 16, 100-byte values, 32 clients, random keys) through the
// router's RESP front over 3 shards vs nutcracker over 3 redis-servers (and over the same 3 shards), beside the HTTP front.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpuSeconds, formatTable, HOST, loadAverage, median, REPO_ROOT, redisBenchmark, runMain, spawnTracked, startNutcracker, startRedis, startShard, waitForOutput, type BenchmarkLoad, type RunningServer } from './lib.ts'
import { closeAgent, KEY_COUNT, loadThroughRouter, VALUE_BYTES } from './router/keys.ts'
import { GET_SCRIPT, MIXED_SCRIPT, runWrk } from './router/wrk.ts'

const SHARDS = 3
const CLIENTS = 32
// --quick: a smoke test of the whole pipeline (short runs, one round); its numbers mean little.
const QUICK = process.argv.includes('--quick')
const ROUNDS = QUICK ? 1 : 3
const WRK_SECONDS = QUICK ? 2 : 5
const REQUESTS: Record<number, number> = QUICK ? { 1: 20_000, 16: 50_000 } : { 1: 150_000, 16: 600_000 }
const PIPELINES = [1, 16]
const TESTS = ['GET', 'SET'] as const
const TARGET_RATIO = 0.8
const SHARDLINE_CLI = fileURLToPath(new URL('../cli/shardline.ts', import.meta.url))

/** One router process (workers: 1, like nutcracker's one thread) with its HTTP and RESP fronts over the shards. */
async function startRouter(dir: string, shards: RunningServer[]): Promise<RunningServer & { httpPort: number }> {
  const file = join(dir, 'router.yaml')
  writeFileSync(file, [
    `listen: { data: "${HOST}:0", admin: "${HOST}:0", resp: "${HOST}:0" }`,
    'workers: 1',
    'pools:',
    '  main:',
    '    shards:',
    ...shards.map((shard, i) => `      - { name: s${i}, primary: "${HOST}:${shard.port}" }`),
    '',
  ].join('\n'))
  const proc = spawnTracked('router', process.execPath, [SHARDLINE_CLI, 'router', '--config', file], { cwd: REPO_ROOT, env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn' } })
  const match = await waitForOutput(proc, /shardline router ready: http:\/\/[\d.]+:(\d+) admin \S+ resp [\d.]+:(\d+)/, 30_000)
  return { kind: 'router', proc, port: Number(match[2]), pid: proc.child.pid!, httpPort: Number(match[1]) }
}

interface Cell {
  rps: number[]
  cpuMicros: number[]
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-router-resp-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const shards: RunningServer[] = []
  for (let i = 0; i < SHARDS; i++) shards.push(await startShard({ name: `s${i}`, maxMemory: '256mb' }))
  const router = await startRouter(dir, shards)
  const redises: RunningServer[] = []
  for (let i = 0; i < SHARDS; i++) redises.push(await startRedis(['--maxmemory', '256mb']))
  const nutcracker = await startNutcracker(dir, redises)
  // The same proxy over the router's own shards: what the proxy costs apart from what the backends cost.
  mkdirSync(join(dir, 'over-shards'))
  const nutcrackerShards = await startNutcracker(join(dir, 'over-shards'), shards)
  console.log(`router pid ${router.pid} (1 process) resp :${router.port} http :${router.httpPort} over shards ${shards.map((s) => `:${s.port}`).join(' ')}`)
  console.log(`nutcracker pid ${nutcracker.pid} :${nutcracker.port} over redis-servers ${redises.map((r) => `:${r.port}`).join(' ')}; nutcracker pid ${nutcrackerShards.pid} :${nutcrackerShards.port} over the shards`)
  console.log(`load average ${loadAverage()} at start; ${ROUNDS} round(s), ${CLIENTS} clients, ${VALUE_BYTES}-byte values, keys at random among ${KEY_COUNT}`)

  // The HTTP front's reads need the keys wrk asks for (key:0 … key:N-1); redis-benchmark's SET runs fill its own.
  await loadThroughRouter(router.httpPort)
  closeAgent()

  const load = (pipeline: number, requests = REQUESTS[pipeline]): BenchmarkLoad => ({ requests, clients: CLIENTS, valueBytes: VALUE_BYTES, keyspace: KEY_COUNT, pipeline, timeoutMs: 300_000 })
  // JIT warm-up and the keys redis-benchmark's GETs read, not measured.
  const targets = [{ id: 'router', server: router }, { id: 'twem-redis', server: nutcracker }, { id: 'twem-shards', server: nutcrackerShards }]
  for (const { server } of targets) {
    await redisBenchmark(server, 'SET', load(16, 100_000))
    await redisBenchmark(server, 'GET', load(1, 20_000))
  }
  await runWrk('http warm-up', router.httpPort, '/key:', { threads: 2, connections: CLIENTS, seconds: 1, script: GET_SCRIPT })

  const cells = new Map<string, Cell>()
  const record = (key: string, rps: number, cpuMicros: number) => {
    const cell = cells.get(key) ?? { rps: [], cpuMicros: [] }
    cell.rps.push(rps)
    cell.cpuMicros.push(cpuMicros)
    cells.set(key, cell)
  }
  const loads: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    for (const test of TESTS) {
      for (const pipeline of PIPELINES) {
        // Interleaved, and each round in the other order, so drift in the machine's load hits both alike.
        const order = round % 2 === 0 ? targets : [...targets].reverse()
        for (const { id, server } of order) {
          const run = await redisBenchmark(server, test, load(pipeline))
          record(`${id} ${test} ${pipeline}`, run.rps, run.cpuMicros)
        }
      }
      const before = cpuSeconds(router.pid)
      const http = await runWrk(`http ${test}`, router.httpPort, '/key:', { threads: 2, connections: CLIENTS, seconds: WRK_SECONDS, script: test === 'GET' ? GET_SCRIPT : MIXED_SCRIPT, scriptArgs: test === 'GET' ? [] : ['100'] })
      if (http.non2xx > 0 || http.socketErrors > 0) console.warn(`http ${test}: ${http.non2xx} non-2xx, ${http.socketErrors} socket errors`)
      record(`http ${test}`, http.rps, ((cpuSeconds(router.pid) - before) / http.requests) * 1e6)
      loads.push(loadAverage())
    }
    console.log(`round ${round + 1}/${ROUNDS} done, load average ${loadAverage()}`)
  }

  const rows = TESTS.flatMap((test) => PIPELINES.map((pipeline) => {
    const resp = cells.get(`router ${test} ${pipeline}`)!
    const twem = cells.get(`twem-redis ${test} ${pipeline}`)!
    const twemShards = cells.get(`twem-shards ${test} ${pipeline}`)!
    const http = cells.get(`http ${test}`)!
    const ratio = median(resp.rps) / median(twem.rps)
    return [
      `${test} -P ${pipeline}`,
      fmt(median(resp.rps)),
      fmt(median(twem.rps)),
      `${fmt(ratio, 2)}${ratio >= TARGET_RATIO ? '' : ' (below 0.8)'}`,
      fmt(median(twemShards.rps)),
      fmt(median(resp.rps) / median(twemShards.rps), 2),
      pipeline === 1 ? fmt(median(http.rps)) : '-',
      fmt(median(resp.cpuMicros), 1),
      fmt(median(twem.cpuMicros), 1),
      fmt(median(twemShards.cpuMicros), 1),
      pipeline === 1 ? fmt(median(http.cpuMicros), 1) : '-',
    ]
  }))
  console.log()
  console.log(formatTable(['op', '(a) router RESP req/s', '(b) nutcracker→redis req/s', 'a/b', '(b2) nutcracker→shards req/s', 'a/b2', '(c) router HTTP req/s', 'µs CPU/req: router RESP', '(b) nutcracker', '(b2) nutcracker', '(c) router HTTP'], rows))
  console.log()
  console.log(`medians of ${ROUNDS} interleaved round(s); (a) router (1 process) RESP front over ${SHARDS} shardline shards; (b) nutcracker 0.5.0 (one thread) over ${SHARDS} redis-servers; (b2) the same over the ${SHARDS} shards;`)
  console.log(`(c) wrk (2 threads, ${CLIENTS} connections, ${WRK_SECONDS} s) GET /key:N or POST {"value"} through the router's HTTP front; load average during rounds: ${loads.map((l) => fmt(l, 2)).join(', ')}`)
}

runMain(main)
