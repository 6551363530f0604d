// The shard's CPU time per pipelined request (redis-benchmark SET and GET, -P 16 by default), the
// figure least disturbed by other load, optionally with a V8 CPU profile summarised per test, or
// side by side with another checkout's shard (runs alternate, so drift hits both alike):
//   npx node bench/shard-cpu.ts [--requests 1000000] [--pipeline 16] [--repeats 3] [--tests SET,GET]
//                               [--profile] [--baseline <other checkout>/cli/shardline.ts] [--node-flag <flag>]...
// --node-flag adds a flag to the shard's node (after its own, so --no-optimize-for-size undoes one).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { formatTopFunctions, summariseProfile } from './cpu-profile.ts'
import { formatTable, HOST, loadAverage, median, redisBenchmark, REPO_ROOT, runMain, spawnTracked, stopServer, waitForOutput, type RunningServer } from './lib.ts'

const { values: options } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000000' },
    pipeline: { type: 'string', default: '16' },
    repeats: { type: 'string', default: '3' },
    tests: { type: 'string', default: 'SET,GET' },
    profile: { type: 'boolean', default: false },
    baseline: { type: 'string' },
    'node-flag': { type: 'string', multiple: true, default: [] },
  },
})
const REQUESTS = Number(options.requests)
const PIPELINE = Number(options.pipeline)
const REPEATS = Number(options.repeats)
const TESTS = options.tests.split(',').map((test) => test.trim().toUpperCase())
const WARMUP_REQUESTS = 100_000
const CLIENTS = 32
const VALUE_BYTES = 100
const KEYSPACE = 100_000
const RUN_TIMEOUT_MS = 120_000

const THIS_CLI = path.join(REPO_ROOT, 'cli/shardline.ts')

/** `shardline shard` under node with extra flags (kept across its re-exec with a heap limit, same pid). */
async function startShard(nodeFlags: string[], cli = THIS_CLI): Promise<RunningServer> {
  const name = cli === THIS_CLI ? 'cpu' : 'baseline'
  const args = [...nodeFlags, cli, 'shard', '--host', HOST, '--port', '0', '--admin-port', '0', '--max-memory', '64mb', '--policy', 'lru', '--name', name]
  const proc = spawnTracked(`shard ${name}`, process.execPath, args, { cwd: path.dirname(path.dirname(cli)), env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn' } })
  const match = await waitForOutput(proc, new RegExp(`shardline shard ${name} ready: resp ([\\d.]+):(\\d+)`), 30_000)
  return { kind: 'shard', proc, port: Number(match[2]), pid: proc.child.pid! }
}

const run = (server: RunningServer, test: string, requests: number) =>
  redisBenchmark(server, test, { requests, clients: CLIENTS, valueBytes: VALUE_BYTES, keyspace: KEYSPACE, pipeline: PIPELINE, timeoutMs: RUN_TIMEOUT_MS })

// GET is measured on keys a SET wrote (as in bench/resp-throughput.ts): mostly hits.
async function warmUp(server: RunningServer, test: string): Promise<void> {
  await run(server, 'SET', WARMUP_REQUESTS)
  if (test !== 'SET') await run(server, test, WARMUP_REQUESTS)
}

async function main(): Promise<void> {
  const nodeFlags = options['node-flag']
  console.log(`node flags: ${nodeFlags.join(' ') || '(the shard command\'s own)'}; load average ${loadAverage()}`)
  const cpu = new Map<string, number[]>(TESTS.map((test) => [test, []]))
  const rps = new Map<string, number[]>(TESTS.map((test) => [test, []]))
  if (options.profile) {
    // One shard per test, so that each profile holds one test (and its short warm-up).
    for (const test of TESTS) {
      const dir = mkdtempSync(path.join(tmpdir(), 'shard-cpu-'))
      const server = await startShard([...nodeFlags, '--cpu-prof', `--cpu-prof-dir=${dir}`])
      try {
        await warmUp(server, test)
        const result = await run(server, test, REQUESTS)
        cpu.get(test)!.push(result.cpuMicros)
        rps.get(test)!.push(result.rps)
      } finally {
        await stopServer(server)
      }
      // The shard re-executes itself with its heap flags: the last profile is the shard's own.
      const file = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile')).sort().at(-1)
      if (!file) throw new Error(`the shard wrote no profile into ${dir}`)
      console.log(`\n${test} -P ${PIPELINE}: top functions by self time (${path.join(dir, file)})`)
      console.log(formatTopFunctions(summariseProfile(path.join(dir, file)), 30))
      if (!process.env.KEEP_PROFILES) rmSync(dir, { recursive: true })
    }
  } else {
    const versions = options.baseline ? ['baseline', 'this'] : ['this']
    const servers = new Map<string, RunningServer>()
    try {
      for (const version of versions) servers.set(version, await startShard(nodeFlags, version === 'this' ? THIS_CLI : options.baseline))
      for (const server of servers.values()) for (const test of TESTS) await warmUp(server, test)
      for (let repeat = 0; repeat < REPEATS; repeat++) {
        for (const test of TESTS) {
          const order = repeat % 2 === 0 ? versions : [...versions].reverse()
          for (const version of order) {
            const result = await run(servers.get(version)!, test, REQUESTS)
            const cell = `${test} ${version}`
            cpu.set(cell, [...(cpu.get(cell) ?? []), result.cpuMicros])
            rps.set(cell, [...(rps.get(cell) ?? []), result.rps])
            console.log(`  run ${repeat + 1}/${REPEATS} ${test} -P ${PIPELINE} ${version}: ${result.rps.toFixed(0)} rps, ${result.cpuMicros.toFixed(2)} µs CPU/req`)
          }
        }
      }
    } finally {
      await Promise.all([...servers.values()].map(stopServer))
    }
    if (options.baseline) {
      const rows = TESTS.map((test) => {
        const [before, after] = [cpu.get(`${test} baseline`)!, cpu.get(`${test} this`)!]
        return [test, median(before).toFixed(2), median(after).toFixed(2), median(after.map((value, i) => value / before[i])).toFixed(2)]
      })
      console.log(`\nredis-benchmark -n ${REQUESTS} -c ${CLIENTS} -d ${VALUE_BYTES} -r ${KEYSPACE} -P ${PIPELINE}; medians; baseline ${options.baseline}\n`)
      console.log(formatTable(['test', 'baseline CPU µs/req', 'this CPU µs/req', 'this/baseline (median of pairs)'], rows))
      console.log(`\nload average at the end ${loadAverage()}`)
      return
    }
    for (const test of TESTS) {
      cpu.set(test, cpu.get(`${test} this`)!)
      rps.set(test, rps.get(`${test} this`)!)
    }
  }
  console.log(`\nredis-benchmark -n ${REQUESTS} -c ${CLIENTS} -d ${VALUE_BYTES} -r ${KEYSPACE} -P ${PIPELINE}; medians\n`)
  const rows = TESTS.map((test) => [test, median(rps.get(test)!).toFixed(0), median(cpu.get(test)!).toFixed(2), cpu.get(test)!.map((v) => v.toFixed(2)).join(' ')])
  console.log(formatTable(['test', 'shard rps', 'shard CPU µs/req', 'per run'], rows))
  console.log(`\nload average at the end ${loadAverage()}`)
}

runMain(main)
