// What counters as PN-counters cost: redis-benchmark INCR against this checkout's shard, an earlier
// checkout's (--before, counters as plain values) and redis-server, side by side; medians of 3 runs.
// Usage:
//   git worktree add /tmp/before <rev> && ln -s "$PWD/node_modules" /tmp/before/node_modules
//   npx node bench/counters.ts --before /tmp/before
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
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
const REPEATS = 3
/** Many counters, and one counter every client increments (each increment rewrites one component). */
const KEYSPACES = [100_000, 1]
const PIPELINES = [1, 16]

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { before: { type: 'string' } } })
  const started = Date.now()
  const servers: Array<{ label: string; server: RunningServer }> = [{ label: 'after', server: await startShard({ name: 'after' }) }]
  if (values.before) servers.push({ label: 'before', server: await startShard({ name: 'before', cli: join(resolve(values.before), 'cli/shardline.ts') }) })
  servers.push({ label: 'redis', server: await startRedis() })
  try {
    console.log(`code: ${codeVersion()}${values.before ? `, before: ${values.before}` : ''}; load average ${loadAverage()}`)
    const load = (keyspace: number, pipeline: number, requests = REQUESTS) => ({ requests, clients: 32, valueBytes: 8, keyspace, pipeline, timeoutMs: 60_000 })
    for (const { server } of servers) await redisBenchmark(server, 'INCR', load(100_000, 1, 50_000)) // JIT warm-up
    const runs = new Map<string, Record<string, BenchmarkRun[]>>()
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      for (const keyspace of KEYSPACES) {
        for (const pipeline of PIPELINES) {
          const cell = runs.get(`${keyspace} ${pipeline}`) ?? {}
          runs.set(`${keyspace} ${pipeline}`, cell)
          // A different server first in each repeat, so drift on this shared machine hits all alike.
          const order = servers.map((_, i) => servers[(i + repeat) % servers.length])
          for (const { label, server } of order) (cell[label] ??= []).push(await redisBenchmark(server, 'INCR', load(keyspace, pipeline)))
          console.log(`  run ${repeat + 1}/${REPEATS} INCR -r ${keyspace} -P ${pipeline}: ${servers.map(({ label }) => `${label} ${cell[label].at(-1)!.rps.toFixed(0)} rps`).join(', ')}`)
        }
      }
    }
    const rows = [...runs.entries()].map(([name, cell]) => {
      const [keyspace, pipeline] = name.split(' ')
      const ratio = (label: string) => cell[label] ? median(cell.after.map((run, i) => run.rps / cell[label][i].rps)).toFixed(2) : '-'
      return [
        `INCR ${keyspace === '1' ? 'one key' : `${keyspace} keys`}${pipeline === '1' ? '' : ` -P ${pipeline}`}`,
        ...servers.map(({ label }) => median(cell[label].map((run) => run.rps)).toFixed(0)),
        ratio('before'),
        ratio('redis'),
        ...servers.map(({ label }) => median(cell[label].map((run) => run.cpuMicros)).toFixed(1)),
      ]
    })
    console.log(`\nredis-benchmark -t incr -n ${REQUESTS} -c 32, median of ${REPEATS} runs (ratios: median of the per-run ratios)\n`)
    console.log(formatTable(['test', ...servers.map(({ label }) => `${label} rps`), 'after/before', 'after/redis', ...servers.map(({ label }) => `${label} CPU µs/req`)], rows))
    console.log(`\ntotal time ${((Date.now() - started) / 1000).toFixed(0)} s; load average at the end ${loadAverage()} (2 cores: above ~2.5 means other work competed)`)
  } finally {
    await Promise.all(servers.map(({ server }) => stopServer(server)))
  }
}

runMain(main)
