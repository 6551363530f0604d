// RESP throughput: redis-benchmark GET and SET (100-byte values, 32 clients, with and without -P 16)
// against a shardline shard and a redis-server started in the same run; median of 3 runs, shard/redis ratio.
import { codeVersion, formatTable, HOST, median, runCommand, runMain, startRedis, startShard, stopServer, type RunningServer } from './lib.ts'

const REQUESTS = 200_000
const WARMUP_REQUESTS = 50_000
const CLIENTS = 32
const VALUE_BYTES = 100
const KEYSPACE = 100_000
const REPEATS = 3
const RUN_TIMEOUT_MS = 60_000
const TARGETS: Record<number, number> = { 1: 0.6, 16: 0.4 }

/** One redis-benchmark run of SET then GET; returns requests per second by test name. */
async function benchmark(server: RunningServer, pipeline: number, requests: number): Promise<Record<string, number>> {
  const args = ['-h', HOST, '-p', String(server.port), '-t', 'set,get', '-n', String(requests), '-c', String(CLIENTS), '-d', String(VALUE_BYTES), '-r', String(KEYSPACE), '-P', String(pipeline), '--csv']
  const csv = await runCommand(`redis-benchmark ${server.kind}`, '/usr/bin/redis-benchmark', args, RUN_TIMEOUT_MS)
  const rps: Record<string, number> = {}
  for (const line of csv.split('\n')) {
    const match = line.match(/^"([A-Z]+)","([\d.]+)"/)
    if (match) rps[match[1]] = Number(match[2])
  }
  if (rps.SET === undefined || rps.GET === undefined) throw new Error(`could not parse redis-benchmark output against ${server.kind}:\n${csv}`)
  return rps
}

async function main(): Promise<void> {
  const started = Date.now()
  const shard = await startShard({ maxMemory: '64mb', policy: 'lru', name: 'bench' })
  const redis = await startRedis()
  try {
    console.log(`code: ${codeVersion()}`)
    console.log(`shard pid ${shard.pid} port ${shard.port}, redis pid ${redis.pid} port ${redis.port}`)
    // JIT warm-up for the shard (and the same treatment for redis); not measured.
    for (const server of [shard, redis]) await benchmark(server, 1, WARMUP_REQUESTS)

    // samples[pipeline][test][kind] = rps of each repeat
    const samples: Record<number, Record<string, Record<string, number[]>>> = {}
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      for (const pipeline of [1, 16]) {
        // Alternate which server goes first so slow drift on the noisy machine hits both alike.
        const order = repeat % 2 === 0 ? [shard, redis] : [redis, shard]
        for (const server of order) {
          const rps = await benchmark(server, pipeline, REQUESTS)
          for (const [test, value] of Object.entries(rps)) {
            samples[pipeline] ??= {}
            samples[pipeline][test] ??= { shard: [], redis: [] }
            samples[pipeline][test][server.kind].push(value)
          }
          console.log(`  run ${repeat + 1}/${REPEATS} -P ${String(pipeline).padEnd(2)} ${server.kind.padEnd(5)} SET ${rps.SET.toFixed(0).padStart(8)}  GET ${rps.GET.toFixed(0).padStart(8)} rps`)
        }
      }
    }

    const rows: Array<Array<string | number>> = []
    const verdicts: string[] = []
    for (const pipeline of [1, 16]) {
      for (const test of ['GET', 'SET']) {
        const { shard: shardRuns, redis: redisRuns } = samples[pipeline][test]
        const shardRps = median(shardRuns)
        const redisRps = median(redisRuns)
        // Each repeat's shard and redis runs are back to back: the ratio is taken per repeat, then the median.
        const ratio = median(shardRuns.map((rps, i) => rps / redisRuns[i]))
        const label = pipeline === 1 ? test : `${test} -P ${pipeline}`
        rows.push([label, shardRps.toFixed(0), redisRps.toFixed(0), ratio.toFixed(2)])
        const target = TARGETS[pipeline]
        verdicts.push(`${label}: ratio ${ratio.toFixed(2)} ${ratio >= target ? '>=' : '<'} ${target} target → ${ratio >= target ? 'met' : 'NOT met'}`)
      }
    }
    console.log(`\nredis-benchmark -n ${REQUESTS} -c ${CLIENTS} -d ${VALUE_BYTES} -r ${KEYSPACE}, median of ${REPEATS} runs (rps = requests per second; ratio = median of the per-run shard/redis ratios)\n`)
    console.log(formatTable(['test', 'shard rps', 'redis rps', 'ratio'], rows))
    console.log(`\n${verdicts.join('\n')}`)
    console.log(`\ntotal time ${((Date.now() - started) / 1000).toFixed(0)} s`)
  } finally {
    await Promise.all([stopServer(shard), stopServer(redis)])
  }
}

runMain(main)
