// Hot keys: the detector on a synthetic stream (time to flag, recall, false positives, sketch
// size, update cost), then a real cluster (8 shards, 2 routers, Zipf reads, spreading on vs off,
// busiest shard's share of operations) and a hot counter's shard writes, batched vs unbatched.
import { mkdtempSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { DEFAULT_DETECTOR_OPTIONS, HotKeyDetector } from '../common/hot-key-detector.ts'
import { HOST, REPO_ROOT, formatTable, killProcess, median, runMain, spawnTracked, startShard, type RunningServer, type TrackedProcess } from './lib.ts'
import { createRandom, requestStream, shuffledRanks, zipfCdf } from './zipf.ts'

const CLI = join(REPO_ROOT, 'cli/shardline.ts')
const KEYS = 1_000_000
const SHARDS = 8
const WARMUP = 20_000
const MEASURED = 120_000
const CONCURRENCY = 64

function detectorBench(): Array<Array<string | number>> {
  const random = createRandom(7)
  const cdf = zipfCdf(100_000, 1.0)
  const rankToKey = shuffledRanks(100_000, random)
  const stream = requestStream(cdf, rankToKey, 2_000_000, random)
  const keys = Array.from({ length: 100_000 }, (_, i) => `key:${i}`)
  // The truth: each key's share of the stream.
  const counts = new Float64Array(100_000)
  for (const k of stream) counts[k]++
  const hot = new Set<number>()
  for (let i = 0; i < counts.length; i++) if (counts[i] / stream.length >= 0.005) hot.add(i)
  // 100k requests a second of virtual time; the hot set is judged after the first 2 seconds.
  const detector = new HotKeyDetector(DEFAULT_DETECTOR_OPTIONS, 0)
  const flagged = new Set<number>()
  for (let i = 0; i < stream.length; i++) {
    const now = i / 100
    if (detector.record(keys[stream[i]], now) && now > 2000) flagged.add(stream[i])
  }
  const recall = [...hot].filter((k) => flagged.has(k)).length / hot.size
  const falsePositives = [...flagged].filter((k) => !hot.has(k))
  // A key that turns hot at 0.5% of 100k req/s: time until flagged.
  const fresh = new HotKeyDetector(DEFAULT_DETECTOR_OPTIONS, 0)
  let flaggedAfter = NaN
  for (let i = 0; i < 400_000; i++) {
    const now = i / 100
    const turnsHot = now >= 2000
    const key = turnsHot && i % 200 === 0 ? 'newly-hot' : keys[stream[i]]
    if (fresh.record(key, now) && key === 'newly-hot') {
      flaggedAfter = now - 2000
      break
    }
  }
  // Update cost: median of rounds of 1M updates on real time.
  const timer = new HotKeyDetector(DEFAULT_DETECTOR_OPTIONS, Date.now())
  const rounds: number[] = []
  for (let round = 0; round < 7; round++) {
    const started = performance.now()
    const now = Date.now()
    for (let i = 0; i < 1_000_000; i++) timer.record(keys[stream[i]], now)
    rounds.push(((performance.now() - started) * 1e6) / 1_000_000)
  }
  const sketchBytes = 4 * 2 ** Math.ceil(Math.log2(DEFAULT_DETECTOR_OPTIONS.width)) * 2
  return [
    ['keys truly >= 0.5% of traffic (Zipf 1.0, 100k keys)', hot.size],
    ['recall (target >= 99%)', `${(recall * 100).toFixed(1)}%`],
    ['false positives: cold keys flagged / all cold keys (target <= 1%)', `${falsePositives.length} / ${100_000 - hot.size} (${((falsePositives.length / (100_000 - hot.size)) * 100).toFixed(3)}%)`],
    ['...the same as a share of the flagged keys', `${falsePositives.length} of ${flagged.size} (${((falsePositives.length / Math.max(1, flagged.size)) * 100).toFixed(1)}%), true shares ${falsePositives.map((k) => ((counts[k] / stream.length) * 100).toFixed(2) + '%').join(', ') || '-'}`],
    ['time to flag a key at 0.5% (target <= 1000 ms)', `${flaggedAfter} ms`],
    ['sketch memory (target <= 128 KB)', `${sketchBytes / 1024} KB`],
    ['one update, median of 7 x 1M (target <= 150 ns)', `${median(rounds).toFixed(0)} ns`],
  ]
}

async function startRouter(config: string): Promise<{ proc: TrackedProcess; url: URL; adminUrl: string }> {
  const proc = spawnTracked('router', process.execPath, [CLI, 'router', '--config', config], { cwd: REPO_ROOT, env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn', SHARDLINE_LOG_FORMAT: 'json' } })
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    const match = /shardline router ready: (http:\/\/\S+) admin (http:\/\/\S+)/.exec(proc.output())
    if (match) return { proc, url: new URL(match[1]), adminUrl: match[2] }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`router did not start:\n${proc.output()}`)
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY })
function request(url: URL, method: string, path: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path, agent, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Sends requests through the routers (alternating), CONCURRENCY in flight, optionally paced. */
async function drive(routers: URL[], count: number, next: (i: number) => { method: string; path: string; body?: string }, ratePerSecond = Infinity, concurrency = CONCURRENCY): Promise<number> {
  let issued = 0
  let failures = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (issued < count) {
      const i = issued++
      const due = started + (i * 1000) / ratePerSecond
      const wait = due - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      const { method, path, body } = next(i)
      const status = await request(routers[i % routers.length], method, path, body)
      if (status >= 400 && status !== 404) failures++
    }
  }))
  return failures
}

/** Data operations each shard has executed so far (reads, writes, increments). */
async function shardOps(shards: RunningServer[]): Promise<number[]> {
  return Promise.all(shards.map(async (shard) => {
    const text = await (await fetch(`${shard.adminUrl}/metrics`)).text()
    let sum = 0
    for (const match of text.matchAll(/shardline_shard_commands_total\{command="(sl\.getv|sl\.setv|del|incrby|get)",outcome="ok"[^}]*\} (\d+)/g)) sum += Number(match[2])
    return sum
  }))
}

function writeConfig(shards: RunningServer[], hotKeys: boolean): string {
  const file = join(mkdtempSync(join(tmpdir(), 'shardline-hotbench-')), 'router.yaml')
  // minRate 1: on this 2-core machine each router sees only a few thousand requests a second, so
  // the default 50 req/s floor would keep keys at 0.5-2% of the traffic from counting as hot.
  writeFileSync(file, `listen:\n  data: 127.0.0.1:0\n  admin: 127.0.0.1:0\npools:\n  main:\n    hotKeys:\n      enabled: ${hotKeys}\n      minRate: 1\n    shards:\n${shards.map((s, i) => `      - name: s${i}\n        primary: ${HOST}:${s.port}`).join('\n')}\n`)
  return file
}

async function clusterBench(): Promise<{ rows: Array<Array<string | number>>; counterRows: Array<Array<string | number>> }> {
  const shards = await Promise.all(Array.from({ length: SHARDS }, (_, i) => startShard({ name: `s${i}`, maxMemory: '96mb' })))
  const rows: Array<Array<string | number>> = []
  // Load 1M keys once, through a router without hot-key spreading.
  {
    const router = await startRouter(writeConfig(shards, false))
    const batch = 1000
    await drive([router.url], KEYS / batch, (i) => ({
      method: 'POST',
      path: '/-/batch',
      body: JSON.stringify({ ops: Array.from({ length: batch }, (_, j) => ({ op: 'set', key: `key:${i * batch + j}`, value: 'v'.repeat(100) })) }),
    }))
    await killProcess(router.proc)
  }
  for (const s of [1.2, 0.99]) {
    const random = createRandom(11)
    const stream = requestStream(zipfCdf(KEYS, s), shuffledRanks(KEYS, random), WARMUP + MEASURED, random)
    for (const spreading of [false, true]) {
      const routers = await Promise.all([0, 1].map(() => startRouter(writeConfig(shards, spreading))))
      const urls = routers.map((r) => r.url)
      await drive(urls, WARMUP, (i) => ({ method: 'GET', path: `/key:${stream[i]}` }))
      const before = await shardOps(shards)
      const started = performance.now()
      const failures = await drive(urls, MEASURED, (i) => ({ method: 'GET', path: `/key:${stream[WARMUP + i]}` }))
      const seconds = (performance.now() - started) / 1000
      const after = await shardOps(shards)
      const ops = after.map((n, i) => n - before[i])
      const mean = ops.reduce((a, b) => a + b, 0) / ops.length
      const hot = await (await fetch(`${routers[0].adminUrl}/admin/hotkeys`)).json()
      rows.push([`Zipf ${s}`, spreading ? 'on' : 'off', (Math.max(...ops) / mean).toFixed(2), (Math.min(...ops) / mean).toFixed(2), hot.pools.main.filter((h: { spread: boolean }) => h.spread).length, Math.round(MEASURED / seconds), failures])
      await Promise.all(routers.map((r) => killProcess(r.proc)))
    }
  }
  // A hot counter at about 5,000 increments/s through two routers: shard writes vs increments.
  const counterRows: Array<Array<string | number>> = []
  const routers = await Promise.all([0, 1].map(() => startRouter(writeConfig(shards, true))))
  const before = await shardOps(shards)
  const increments = 25_000
  const started = performance.now()
  const failures = await drive(routers.map((r) => r.url), increments, () => ({ method: 'POST', path: '/clicks/incr', body: '{"by":1}' }), 5000)
  const seconds = (performance.now() - started) / 1000
  // Unbatched, every increment would be one shard write.
  const writes = (await shardOps(shards)).reduce((sum, n, i) => sum + n - before[i], 0)
  const total = await (await fetch(`${routers[0].url.origin}/clicks/counter`)).json()
  counterRows.push([increments, Math.round(increments / seconds), writes, (increments / Math.max(1, writes)).toFixed(1), total.value === increments ? 'exact' : `WRONG: ${total.value}`, failures])
  await Promise.all(routers.map((r) => killProcess(r.proc)))
  return { rows, counterRows }
}

/** 1M increments from 32 concurrent clients through two routers: the total must be exact. */
async function counterExactness(increments: number): Promise<void> {
  const shards = await Promise.all(Array.from({ length: SHARDS }, (_, i) => startShard({ name: `s${i}`, maxMemory: '32mb' })))
  const routers = await Promise.all([0, 1].map(() => startRouter(writeConfig(shards, true))))
  const started = performance.now()
  const failures = await drive(routers.map((r) => r.url), increments, () => ({ method: 'POST', path: '/exact/incr', body: '{"by":1}' }), Infinity, 32)
  const seconds = (performance.now() - started) / 1000
  const totals = await Promise.all(routers.map(async (r) => (await (await fetch(`${r.url.origin}/exact/counter`)).json()).value))
  const metrics = await (await fetch(`${routers[0].adminUrl}/metrics`)).text()
  const batches = Number(/shardline_router_counter_batch_size_count (\d+)/.exec(metrics)?.[1] ?? 0)
  console.log(formatTable(['increments', 'clients', 'seconds', 'increments/s', 'failed requests', 'total via router 1', 'total via router 2', 'exact', 'batches on router 1'],
    [[increments, 32, seconds.toFixed(0), Math.round(increments / seconds), failures, totals[0], totals[1], totals.every((t) => t === increments - failures) ? 'yes' : 'NO', batches]]))
}

if (process.argv.includes('--counter-exactness')) {
  runMain(() => counterExactness(Number(process.env.INCREMENTS ?? 1_000_000)))
} else runMain(async () => {
  console.log('## Hot-key detector (synthetic stream, virtual time at 100k req/s)\n')
  console.log(formatTable(['measure', 'result'], detectorBench()))
  console.log(`\n## Real cluster: ${SHARDS} shard primaries, 2 routers, ${KEYS / 1e6}M keys, ${MEASURED / 1000}k measured reads after ${WARMUP / 1000}k warm-up, ${CONCURRENCY} in flight\n`)
  const { rows, counterRows } = await clusterBench()
  console.log(formatTable(['stream', 'spreading', 'busiest shard / mean', 'idlest / mean', 'keys spread (router 1)', 'req/s', 'errors'], rows))
  console.log('\n## Hot counter through 2 routers (50 ms batching window)\n')
  console.log(formatTable(['increments', 'increments/s', 'shard writes', 'fewer writes than unbatched', 'final count', 'errors'], counterRows))
})
