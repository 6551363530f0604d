// The router's RESP front with real processes: redis-cli (arguments and stdin), ioredis (pipelines,
// MGET/MSET, counters, errors), redis-benchmark with no errors, and a primary killed with -9 under
// load: reads and versioned writes go on through the replica, and no INCR is ever applied twice.
import t from 'tap'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { run, startRouterProcess, waitFor } from '../helpers/processes.ts'
import { DEFAULT_ROUTER, RouterClient, startReplicatedCluster, type ShardNode } from '../helpers/replicated-cluster.ts'

const cluster = await startReplicatedCluster(t, { pairs: 2, routers: 0 })
const destination = (node: ShardNode) => `{ address: "${node.address}", admin: "${node.host}:${node.adminPort}" }`
const configFile = join(mkdtempSync(join(tmpdir(), 'shardline-router-resp-')), 'router.yaml')
writeFileSync(configFile, `listen: { data: 127.0.0.1:0, admin: 127.0.0.1:0, resp: 127.0.0.1:0 }
pools:
  main:
    hotKeys: { enabled: false }
    shards:
${cluster.pairs.map((pair) => `      - { name: ${pair.name}, primary: ${destination(pair.primary)}, replicas: [${destination(pair.replica)}] }`).join('\n')}
health: { heartbeatMs: ${DEFAULT_ROUTER.heartbeatMs}, failuresBeforeKnockout: ${DEFAULT_ROUTER.failuresBeforeKnockout}, probeInitialMs: ${DEFAULT_ROUTER.probeInitialMs}, probeMaxMs: ${DEFAULT_ROUTER.probeMaxMs} }
connections: { timeoutMs: ${DEFAULT_ROUTER.timeoutMs}, connectTimeoutMs: ${DEFAULT_ROUTER.connectTimeoutMs} }
`)
const router = await startRouterProcess(t, configFile)
const respPort = /resp [\d.]+:(\d+)/.exec(router.output())![1]
const admin = new RouterClient(router.url, router.adminUrl)
await waitFor(async () => (await admin.shards()).every((d) => !d.knockedOut), 10_000, () => 'every destination admitted')

const redis = new Redis({ port: Number(respPort), host: '127.0.0.1', maxRetriesPerRequest: 0 })
t.teardown(() => redis.disconnect())
const cli = (...args: string[]) => run('redis-cli', ['-p', respPort, ...args])

t.test('redis-cli with arguments and on stdin', async (t) => {
  t.equal((await cli('SET', 'greeting', 'hello', 'EX', '60')).stdout, 'OK\n')
  t.equal((await cli('GET', 'greeting')).stdout, 'hello\n')
  t.equal((await cli('TTL', 'greeting')).stdout, '60\n')
  t.match((await cli('FLUSHALL')).stdout, /^ERR unknown command 'FLUSHALL', with args beginning with: \n/)
  const piped = await run('redis-cli', ['-p', respPort], 'SET n 41\nINCR n\nGET n\nDEL n greeting\nEXISTS n greeting\n')
  t.equal(piped.stdout, 'OK\n42\n42\n2\n0\n')
  t.equal((await fetch(`${router.url}/a-key-from-resp`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'bytes' })).status, 200)
  t.equal((await cli('GET', 'a-key-from-resp')).stdout, 'bytes\n', 'the HTTP and RESP fronts share the keys')
})

t.test('ioredis: pipelines in order, MGET/MSET, counters and errors', async (t) => {
  const pipeline = redis.pipeline()
  for (let i = 0; i < 200; i++) pipeline.set(`p${i}`, `v${i}`).get(`p${i}`)
  const results = (await pipeline.exec())!
  t.ok(results.every(([error, value], i) => error === null && value === (i % 2 === 0 ? 'OK' : `v${(i - 1) / 2}`)), 'each SET then GET of a key reads what the SET wrote')
  t.equal(await redis.mset('m1', 'a', 'm2', 'b'), 'OK')
  t.same(await redis.mget('m1', 'missing', 'm2'), ['a', null, 'b'])
  t.equal(await redis.incrby('ctr', 5), 5)
  t.equal(await redis.decr('ctr'), 4)
  t.equal(await redis.set('nx', '1', 'PX', 10_000, 'NX'), 'OK')
  t.equal(await redis.set('nx', '2', 'NX'), null)
  t.equal(await redis.get('nx'), '1')
  t.equal(await redis.expire('nx', 0), 1)
  t.equal(await redis.exists('nx'), 0)
  await t.rejects(redis.incr('m1'), { message: 'ERR value is not an integer or out of range' })
  await t.rejects(redis.set('k', 'v', 'EX', 0), { message: "ERR invalid expire time in 'set' command" })
  await t.rejects(redis.call('SUNION', 'a', 'b'), { message: "ERR unknown command 'SUNION', with args beginning with: 'a' 'b' " })
})

/** The router's count of GET and SET replies on the RESP port that were not ok. */
async function failedReads(): Promise<number> {
  const metrics = await (await fetch(`${router.adminUrl}/metrics`)).text()
  return [...metrics.matchAll(/^shardline_router_resp_commands_total\{command="(?:get|set)",outcome="(?!ok")[^"]*"\} (\d+)$/gm)].reduce((sum, match) => sum + Number(match[1]), 0)
}

t.test('redis-benchmark GET and SET, pipelined, with no errors', async (t) => {
  const failedBefore = await failedReads()
  const bench = await run('redis-benchmark', ['-p', respPort, '-t', 'set,get', '-n', '20000', '-P', '16', '-c', '16', '-r', '10000', '-d', '100', '--csv'])
  t.equal(bench.code, 0, bench.stderr)
  t.notMatch(bench.stdout + bench.stderr, /error/i)
  const rows = bench.stdout.trim().split('\n').slice(1).map((line) => line.split(',').map((cell) => cell.replace(/"/g, '')))
  t.same(rows.map((row) => row[0]), ['SET', 'GET'])
  for (const row of rows) t.ok(Number(row[1]) > 0, `${row[0]}: ${row[1]} requests/s`)
  t.equal(await failedReads(), failedBefore, 'every GET and SET answered ok')
})

t.test('a primary killed under load: reads and writes go on through the replica, no INCR applied twice', async (t) => {
  const pair = cluster.pairs[0]
  // Keys and a counter that live on the pair whose primary dies.
  const onPair: string[] = []
  for (let i = 0; onPair.length < 51; i++) {
    const steps = (await (await fetch(`${router.adminUrl}/admin/route/f${i}`)).json()) as { steps: { decision: string }[] }
    if (steps.steps.some((step) => step.decision === `shard ${pair.name}`)) onPair.push(`f${i}`)
  }
  const counter = onPair.pop()!
  await redis.mset(...onPair.flatMap((key) => [key, `before-${key}`]))
  await cluster.waitConverged(pair)

  const tally = { acked: 0, failed: 0, readsAfter: 0, writesAfter: 0, readFailures: [] as string[] }
  let knockedOut = false
  let stopping = false
  const client = new Redis({ port: Number(respPort), host: '127.0.0.1', maxRetriesPerRequest: 0 })
  t.teardown(() => client.disconnect())
  const incrLoop = async () => {
    while (!stopping) {
      try {
        await client.incr(counter)
        tally.acked++
      } catch {
        tally.failed++
      }
    }
  }
  const readWriteLoop = async (worker: number) => {
    for (let round = 0; !stopping; round++) {
      const key = onPair[(worker * 7 + round) % onPair.length]
      const after = knockedOut
      try {
        const value = await client.get(key)
        if (after && value !== `before-${key}`) tally.readFailures.push(`${key}: ${value}`)
        else if (after) tally.readsAfter++
      } catch (error) {
        if (after) tally.readFailures.push(`${key}: ${(error as Error).message}`)
      }
      try {
        // A versioned write is repeatable, so it succeeds through the replica too.
        await client.set(`w${worker}`, String(round))
        if (after) tally.writesAfter++
      } catch (error) {
        if (after) tally.readFailures.push(`write: ${(error as Error).message}`)
      }
    }
  }
  const loops = [...Array.from({ length: 8 }, incrLoop), ...Array.from({ length: 4 }, (_, i) => readWriteLoop(i))]
  await waitFor(() => tally.acked > 200, 10_000, () => 'increments under way')
  await pair.primary.kill()
  await waitFor(async () => (await admin.shards()).find((d) => d.name === pair.primary.destination)?.knockedOut, 10_000, () => 'the primary knocked out')
  knockedOut = true
  const ackedAtKnockout = tally.acked
  await waitFor(() => tally.readsAfter > 200 && tally.acked > ackedAtKnockout + 200, 20_000, () => `load after the knock-out: ${JSON.stringify(tally)}`)
  stopping = true
  await Promise.all(loops)

  t.same(tally.readFailures, [], 'every read and write after the knock-out succeeded through the replica')
  const total = Number(await client.get(counter))
  t.ok(total <= tally.acked + tally.failed, `the counter (${total}) is at most the increments acknowledged (${tally.acked}) plus those answered with an error (${tally.failed}): none applied twice`)
  t.ok(total >= tally.acked - ackedAtKnockout, 'increments after the knock-out were applied on the replica')
})
