// RESP throughput: redis-benchmark GET and SET (100-byte values, 32 clients, with and without -P 16)
// against a shardline shard and a redis-server started in the same run; median of 3 runs, shard/redis ratio.
import {
  codeVersion,
  formatTable,
  loadAverage,
  median,
  redisBenchmark,
  runMain,
  startRedis,
  startShard,
  stopServer,
  type BenchmarkRun,
  type RunningServer,
} from './lib.ts'

const REQUESTS = 200_000
const WARMUP_REQUESTS = 50_000
const CLIENTS = 32
const VALUE_BYTES = 100
const KEYSPACE = 100_000
const REPEATS = 3
const RUN_TIMEOUT_MS = 60_000
const PIPELINES = [1, 16]
const TESTS = ['SET', 'GET'] as const
const TARGETS: Record<number, number> = { 1: 0.6, 16: 0.4 }

/** One redis-benchmark run of one test against server. */
const benchmark = (server: RunningServer, test: string, pipeline: number, requests: number): Promise<BenchmarkRun> =>
  redisBenchmark(server, test, { requests, clients: CLIENTS, valueBytes: VALUE_BYTES, keyspace: KEYSPACE, pipeline, timeoutMs: RUN_TIMEOUT_MS })

async function main(): Promise<void> {
  const started = Date.now()
  const shard = await startShard({ maxMemory: '64mb', policy: 'lru', name: 'bench' })
  const redis = await startRedis()
  try {
    console.log(`code: ${codeVersion()}`)
    console.log(`shard pid ${shard.pid} port ${shard.port}, redis pid ${redis.pid} port ${redis.port}; load average ${loadAverage()}`)
    // JIT warm-up for the shard (and the same treatment for redis); not measured.
    for (const server of [shard, redis]) for (const test of TESTS) await benchmark(server, test, 1, WARMUP_REQUESTS)

    // runs[`${test} ${pipeline}`][kind] = one Run per repeat
    const runs = new Map<string, Record<string, BenchmarkRun[]>>()
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      for (const pipeline of PIPELINES) {
        for (const test of TESTS) {
          // Shard and redis run back to back, alternating which goes first, so that drift on the
          // noisy machine hits both alike; the ratio is taken within each pair.
          const order = repeat % 2 === 0 ? [shard, redis] : [redis, shard]
          const cell = runs.get(`${test} ${pipeline}`) ?? { shard: [], redis: [] }
          runs.set(`${test} ${pipeline}`, cell)
          for (const server of order) cell[server.kind].push(await benchmark(server, test, pipeline, REQUESTS))
          const [s, r] = [cell.shard.at(-1)!, cell.redis.at(-1)!]
          console.log(`  run ${repeat + 1}/${REPEATS} ${test} -P ${String(pipeline).padEnd(2)}  shard ${s.rps.toFixed(0).padStart(7)} rps ${s.cpuMicros.toFixed(1).padStart(5)} µs CPU/req   redis ${r.rps.toFixed(0).padStart(7)} rps ${r.cpuMicros.toFixed(1).padStart(5)} µs CPU/req`)
        }
      }
    }

    const rows: Array<Array<string | number>> = []
    const verdicts: string[] = []
    for (const pipeline of PIPELINES) {
      for (const test of [...TESTS].reverse()) {
        const { shard: shardRuns, redis: redisRuns } = runs.get(`${test} ${pipeline}`)!
        const ratios = shardRuns.map((run, i) => run.rps / redisRuns[i].rps)
        const ratio = median(ratios)
        const shardCpu = median(shardRuns.map((run) => run.cpuMicros))
        const redisCpu = median(redisRuns.map((run) => run.cpuMicros))
        const label = pipeline === 1 ? test : `${test} -P ${pipeline}`
        rows.push([
          label,
          median(shardRuns.map((run) => run.rps)).toFixed(0),
          median(redisRuns.map((run) => run.rps)).toFixed(0),
          ratio.toFixed(2),
          ratios.map((r) => r.toFixed(2)).join(' '),
          shardCpu.toFixed(1),
          redisCpu.toFixed(1),
          (redisCpu / shardCpu).toFixed(2),
        ])
        const target = TARGETS[pipeline]
        verdicts.push(`${label}: ratio ${ratio.toFixed(2)} ${ratio >= target ? '>=' : '<'} ${target} target → ${ratio >= target ? 'met' : 'NOT met'}`)
      }
    }
    console.log(`\nredis-benchmark -n ${REQUESTS} -c ${CLIENTS} -d ${VALUE_BYTES} -r ${KEYSPACE}, median of ${REPEATS} runs`)
    console.log('(ratio = median of the per-run shard/redis rps ratios; CPU = server user+system time per request; CPU ratio = redis CPU / shard CPU)\n')
    console.log(formatTable(['test', 'shard rps', 'redis rps', 'ratio', 'per-run ratios', 'shard CPU µs/req', 'redis CPU µs/req', 'CPU ratio'], rows))
    console.log(`\n${verdicts.join('\n')}`)
    console.log(`\ntotal time ${((Date.now() - started) / 1000).toFixed(0)} s; load average at the end ${loadAverage()} (2 cores: above ~2.5 means other work competed)`)
  } finally {
    await Promise.all([stopServer(shard), stopServer(redis)])
  }
}

runMain(main)
