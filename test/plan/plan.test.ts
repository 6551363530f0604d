// `shardline plan` (cli/plan-command.ts over common/capacity.ts and common/resize-plan.ts): the seed's
// worked example, the storage-vs-throughput decision, pod memory against the shard's heap sizing, the
// share of keys a resize moves on the real ring, flags and their errors.
import t from 'tap'
import { parse } from 'yaml'
import { heapLimitMb } from '../../cli/shard-command.ts'
import { explainPlan, explainResize, runPlanCommand } from '../../cli/plan-command.ts'
import { GiB, MiB, TiB, formatSize, parseCount, parseSize, planCapacity, shardMemoryLimitMiB, shardMemoryRequestMiB, type PlanInput } from '../../common/capacity.ts'
import { planResize, poolShardNames } from '../../common/resize-plan.ts'
import { HashRing } from '../../common/ring.ts'
import { ConfigError } from '../../common/validate.ts'

const seed: PlanInput = {
  dataBytes: TiB,
  requestsPerSecond: 100_000,
  valueBytes: 1024,
  keyBytes: 32,
  replicas: 2,
  nodeMemoryBytes: 32 * GiB,
  usableMemoryBytes: 24 * GiB,
  nodeThroughput: 20_000,
  shardsPerNode: 1,
  routerThroughput: 20_000,
}

async function plan(argv: string[]): Promise<string> {
  let text = ''
  await runPlanCommand(argv, (chunk) => (text += chunk))
  return text
}

t.test('the seed\'s worked example: 1 TB, 100k req/s, 24 of 32 GB usable, 20k req/s per node', async (t) => {
  const result = planCapacity(seed)
  // The seed: 1024 GB / 24 GB = 43 nodes for storage, 100k / 20k = 5 for throughput: storage-bound.
  t.equal(result.seed.storageNodes, 43)
  t.equal(result.seed.throughputNodes, 5)
  t.equal(result.seed.bound, 'storage')
  t.equal(result.seed.withReplicas, 129, '43 x 3 copies, before the seed rounds 43 up to 50')
  // shardline: + 170 bytes per 1056-byte entry (x1.161) and the ring's 1.05 -> 53 shards, 159 pods.
  t.equal(result.entry.chargedBytes, 1226)
  t.equal(result.storageShards, 53)
  t.equal(result.throughputShards, 6)
  t.equal(result.bound, 'storage')
  t.equal(result.shards, 53)
  t.equal(result.copies, 3)
  t.equal(result.pods, 159)
  t.ok(Math.abs(result.pods - 150) / 150 <= 0.1, `3x replication: ${result.pods} pods, about the seed's 150`)
  t.equal(result.nodes, 159)
  t.equal(result.maxMemoryMiB, 24 * 1024)
  t.equal(result.memoryRequestMiB, 24 * 1024 + 160)
  t.ok(result.memoryLimitMiB * MiB <= seed.nodeMemoryBytes, `a ${result.memoryLimitMiB} MiB pod limit fits a 32 GB node`)
  t.same(result.warnings, [])
  t.equal(result.routers, 5)
})

t.test('large values: the overhead vanishes and only the ring\'s 1.05 stays above the seed', async (t) => {
  const result = planCapacity({ ...seed, valueBytes: 1024 * 1024 - 32 })
  t.equal(result.seed.storageNodes, 43)
  t.equal(result.storageShards, Math.ceil((1024 / 24) * 1.05 * (1 + 170 / (1024 * 1024))))
  t.equal(result.pods, 45 * 3)
})

t.test('a high request rate with little data is throughput-bound', async (t) => {
  const result = planCapacity({ ...seed, dataBytes: 100 * GiB, requestsPerSecond: 1_000_000 })
  t.equal(result.seed.storageNodes, 5)
  t.equal(result.seed.throughputNodes, 50)
  t.equal(result.seed.bound, 'throughput')
  t.equal(result.bound, 'throughput')
  t.equal(result.shards, Math.ceil((1_000_000 * 1.05) / 20_000))
  t.equal(result.routers, 50)
  t.equal(result.routerMaxReplicas, 100)
})

t.test('shards per node split the node\'s memory and throughput', async (t) => {
  const result = planCapacity({ ...seed, shardsPerNode: 4 })
  t.equal(result.maxMemoryMiB, 6 * 1024)
  t.equal(result.storageShards, Math.ceil((TiB / 1056) * 1226 * 1.05 / (6 * GiB)))
  t.equal(result.nodes, Math.ceil(result.pods / 4))
})

t.test('pod memory: request = budget + 160 MiB; limit covers V8\'s old space as the shard sizes it', async (t) => {
  for (const mib of [4, 16, 64, 512, 1000, 1024, 3000, 24 * 1024, 100_000]) {
    t.equal(shardMemoryRequestMiB(mib), mib + 160)
    // cli/shard-command.ts gives V8 heapLimitMb(maxMemory); the limit must sit above it plus the base.
    t.ok(shardMemoryLimitMiB(mib) >= heapLimitMb(mib * MiB) + 160, `${mib} MiB: limit ${shardMemoryLimitMiB(mib)} >= heap ${heapLimitMb(mib * MiB)} + 160`)
    t.ok(shardMemoryLimitMiB(mib) <= heapLimitMb(mib * MiB) + 161, 'and no more than a MiB above it')
  }
  t.equal(shardMemoryLimitMiB(512), 852, 'the chart\'s default pool: limit 852Mi')
})

t.test('warnings: a limit that does not fit the node, a node nearly full, a huge heap', async (t) => {
  t.match(planCapacity({ ...seed, usableMemoryBytes: 31 * GiB }).warnings, [/exceed the node/])
  t.match(planCapacity({ ...seed, usableMemoryBytes: 30 * GiB, nodeMemoryBytes: 33.5 * GiB }).warnings, [/little is left/])
  t.match(planCapacity({ ...seed, usableMemoryBytes: 40 * GiB, nodeMemoryBytes: 64 * GiB }).warnings, [/--shards-per-node/])
  t.match(planCapacity({ ...seed, valueBytes: 2 * MiB }).warnings, [/1 MiB value limit/])
  t.throws(() => planCapacity({ ...seed, usableMemoryBytes: 40 * GiB }), /usable memory cannot exceed/)
  t.throws(() => planCapacity({ ...seed, requestsPerSecond: 0 }), /requestsPerSecond must be > 0/)
  t.throws(() => planCapacity({ ...seed, dataBytes: Number.NaN }), /dataBytes must be a finite number/)
  t.throws(() => planCapacity({ ...seed, replicas: 1.5 }), /whole numbers/)
  t.throws(() => planCapacity({ ...seed, usableMemoryBytes: MiB, shardsPerNode: 1 }), /at least 4 MiB/)
})

t.test('sizes and counts parse the way the seed writes them', async (t) => {
  t.equal(parseSize('1tb'), TiB)
  t.equal(parseSize('24GB'), 24 * GiB)
  t.equal(parseSize('1.5kb'), 1536)
  t.equal(parseSize('100'), 100)
  t.equal(parseCount('100k'), 100_000)
  t.equal(parseCount('1.5m'), 1_500_000)
  t.throws(() => parseSize('1 parsec'), /invalid size/)
  t.throws(() => parseCount('lots'), /invalid number/)
  t.equal(formatSize(TiB), '1 TiB')
  t.equal(formatSize(1536), '1.5 KiB')
  t.equal(formatSize(12), '12 B')
})

t.test('shardline plan with the defaults prints the seed\'s reasoning and a values.yaml', async (t) => {
  const text = await plan([])
  t.match(text, /1,024 GiB \/ 24 GiB per node = 42\.67 -> 43 nodes/)
  t.match(text, /100,000 req\/s \/ 20,000 req\/s per node = 5 -> 5 nodes/)
  t.match(text, /storage-bound: 43 nodes; x3 copies = 129 \(the seed rounds 43 up to 50 for headroom it does not spell out: x3 = 150\)/)
  t.match(text, /storage-bound: 53 shards x 3 copies = 159 shard pods on 159 nodes/)
  t.match(text, /the seed's figure: bench\/RESULTS\.md has no per-node measurement yet/)
  t.match(text, /memory request 24736 Mi .* limit 27322 Mi/)
  const values = parse(text.slice(text.indexOf('# helm/shardline values')))
  t.same(values.pools, { main: { shards: 53, replicasPerShard: 2, maxMemoryMiB: 24576, policy: 'lru' } })
  t.equal(values.defaultPool, 'main')
  t.same(values.router.autoscaling, { enabled: true, minReplicas: 5, maxReplicas: 10 })
})

t.test('shardline plan --values-only with every flag', async (t) => {
  const text = await plan(['--data', '200gb', '--rate', '50k', '--value-size', '4kb', '--key-size', '40', '--replicas', '1', '--node-memory', '16gb', '--usable-memory', '12gb', '--node-throughput', '30k', '--shards-per-node', '2', '--router-throughput', '25k', '--pool', 'sessions', '--values-only'])
  t.notMatch(text, /seed's arithmetic/)
  const values = parse(text)
  const expected = planCapacity({ dataBytes: 200 * GiB, requestsPerSecond: 50_000, valueBytes: 4096, keyBytes: 40, replicas: 1, nodeMemoryBytes: 16 * GiB, usableMemoryBytes: 12 * GiB, nodeThroughput: 30_000, shardsPerNode: 2, routerThroughput: 25_000 })
  t.same(values.pools, { sessions: { shards: expected.shards, replicasPerShard: 1, maxMemoryMiB: 6144, policy: 'lru' } })
  t.equal(values.defaultPool, 'sessions')
  t.match(text, /^# helm\/shardline values from: shardline plan --data 200gb/)
  t.notMatch(explainPlan(expected, false, false), /unmeasured|bench\/RESULTS/, 'measured figures given: no default notes')
})

t.test('shardline plan --help, and bad flags are configuration errors', async (t) => {
  t.match(await plan(['--help']), /usage|shardline plan \[options\]/)
  t.ok((await plan(['--data', 'lots']).catch((error: unknown) => error)) instanceof ConfigError, 'a ConfigError: the CLI exits 2')
  await t.rejects(plan(['--data', 'lots']), /--data: invalid size "lots"/)
  await t.rejects(plan(['--replicas', '1.5']), /--replicas: "1.5" must be a whole number/)
  await t.rejects(plan(['--pool', 'Main']), /--pool: "Main" must be lowercase/)
  await t.rejects(plan(['--usable-memory', '64gb']), /usable memory cannot exceed node memory/)
  await t.rejects(plan(['--nodes', '3']), /Unknown option/)
})

t.test('a resize from 3 to 4 shards moves about a quarter of the keys, all to s3, measured on the real ring', async (t) => {
  const plan = planResize({ from: 3, to: 4 })
  t.equal(plan.pointsPerShard, 8000, 'the router\'s default points per shard')
  // 200,000 sampled keys: the sampled share is within 4 standard errors (0.4 points) of the exact one.
  t.ok(Math.abs(plan.movedShare - plan.exactMovedShare) < 4 * Math.sqrt(0.25 * 0.75 / plan.sampleKeys), `sampled ${plan.movedShare} vs exact ${plan.exactMovedShare}`)
  t.ok(Math.abs(plan.exactMovedShare - 1 / 4) < 0.01, `about 1/4 moves: ${plan.exactMovedShare}`)
  t.equal(plan.movedBetweenStaying, 0, 'no key moves between s0..s2')
  t.same(plan.shards.map((shard) => shard.name), ['s0', 's1', 's2', 's3'])
  t.equal(plan.shards[3].before, null, 's3 is new')
  t.equal(plan.shards[3].after, plan.exactMovedShare, 'what moves is what s3 owns after')
  // The shares are the rings' exact ones, each summing to 1.
  const ring = new HashRing(poolShardNames(4))
  t.same(plan.shards.map((shard) => shard.after), ['s0', 's1', 's2', 's3'].map((name) => ring.shares().get(name)))
  t.ok(Math.abs(plan.shards.reduce((sum, shard) => sum + (shard.before ?? 0), 0) - 1) < 1e-9)
  // Every staying shard gives up part of its keys; none gains.
  for (const shard of plan.shards.slice(0, 3)) t.ok(shard.after! < shard.before!, `${shard.name} shrinks`)
})

t.test('scaling in is the mirror of scaling out: the removed shards\' keys move, and only they', async (t) => {
  const out = planResize({ from: 3, to: 4 })
  const back = planResize({ from: 4, to: 3 })
  t.equal(back.movedShare, out.movedShare, 'the same sampled keys move, the other way')
  t.equal(back.exactMovedShare, back.shards[3].before, 'what moves is what s3 owned')
  t.equal(back.movedBetweenStaying, 0)
  const two = planResize({ from: 10, to: 8, pointsPerShard: 160 })
  t.equal(two.exactMovedShare, two.shards[8].before! + two.shards[9].before!, 'two removed shards: their shares together')
  t.equal(two.movedBetweenStaying, 0)
  t.ok(Math.abs(two.movedShare - two.exactMovedShare) < 0.005)
  t.throws(() => planResize({ from: 3, to: 3 }), /keeps its size/)
  t.throws(() => planResize({ from: 0, to: 3 }), /shards must be a whole number from 1 to 1000, got 0/)
  t.throws(() => planResize({ from: 3, to: 4, pointsPerShard: 100_001 }), /points per shard must be a whole number from 1 to 100000/)
})

t.test('shardline plan --from 3 --to 4 prints the share that moves, the per-shard table and the ideal 1/N', async (t) => {
  const text = await plan(['--from', '3', '--to', '4'])
  const expected = planResize({ from: 3, to: 4 })
  t.equal(text, explainResize(expected))
  const percent = (share: number) => `${(share * 100).toFixed(2)}%`
  t.match(text, /^shardline plan --from 3 --to 4: scale out, s0\.\.s2 -> s0\.\.s3, 8000 ring points per shard\n/)
  t.match(text, `keys whose owner changes: ${percent(expected.movedShare)} of 200,000 sampled keys (the ring's exact share: ${percent(expected.exactMovedShare)}; ideal 1/4 = 25.00%)`)
  t.match(text, /they move to s3; sampled keys moving between shards that stay: 0\n/)
  const table = text.slice(text.indexOf('  shard')).trimEnd().split('\n').map((line) => line.trim().split(/\s+/))
  t.same(table[0], ['shard', 'before', 'after', 'change', '(points)'])
  t.same(table.slice(1, 5).map((row) => row[0]), ['s0', 's1', 's2', 's3'])
  t.same(table[4].slice(1, 3), ['-', percent(expected.shards[3].after!)])
  t.same(table[5], ['ideal', '33.33%', '25.00%'])
  t.notMatch(text, /keys in the pool/, 'no key count without --pool-keys')
})

t.test('shardline plan --from 4 --to 3 --pool-keys: scale in names the drain and counts the keys that move', async (t) => {
  const text = await plan(['--from', '4', '--to', '3', '--pool-keys', '1000000', '--points', '2000'])
  const expected = planResize({ from: 4, to: 3, pointsPerShard: 2000 })
  t.match(text, /scale in, s0\.\.s3 -> s0\.\.s2, 2000 ring points per shard/)
  t.match(text, /they leave s3 \(drain: pools\.<name>\.drainingShards=1\); sampled keys moving between shards that stay: 0/)
  t.match(text, `of 1,000,000 keys in the pool, about ${Math.round(1_000_000 * expected.exactMovedShare).toLocaleString('en-US')} move`)
  t.match(text, /ideal +25\.00% +33\.33%/)
})

t.test('shardline plan: resize flags and sizing flags do not mix; resize flags are checked', async (t) => {
  await t.rejects(plan(['--from', '3', '--to', '4', '--data', '1tb']), /--data size a deployment and --from, --to plan a resize: use one or the other/)
  await t.rejects(plan(['--pool-keys', '5', '--values-only']), /--values-only size a deployment and --pool-keys plan a resize/)
  await t.rejects(plan(['--from', '3']), /--from and --to go together/)
  await t.rejects(plan(['--points', '160']), /--from and --to go together/)
  await t.rejects(plan(['--from', '3', '--to', 'four']), /--to: "four" must be a whole number/)
  await t.rejects(plan(['--from', '3', '--to', '3']), /plan --from 3 --to 3: the pool keeps its size/)
  await t.rejects(plan(['--from', '3', '--to', '1001']), /shards must be a whole number from 1 to 1000, got 1001/)
  await t.rejects(plan(['--from', '3', '--to', '4', '--points', '0']), /points per shard must be a whole number/)
  t.ok((await plan(['--from', '3']).catch((error: unknown) => error)) instanceof ConfigError, 'a ConfigError: the CLI exits 2')
  t.match(await plan(['--help']), /--from <n> --to <n>/)
})
