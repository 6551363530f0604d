// Hot keys end to end with real processes: four shards and two routers that each detect
// hotness on their own. Reads spread over copies on distinct shards; a write is never stale
// through the router that made it and stale for at most copyTtl through the other; hot
// counters end with the exact sum.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { startRouterProcess, startShardProcess, waitFor } from '../helpers/processes.ts'

const COPY_TTL_MS = 1000
const shards = await Promise.all(['s0', 's1', 's2', 's3'].map((name) => startShardProcess(t, ['--name', name, '--max-memory', '16mb'])))
const config = join(mkdtempSync(join(tmpdir(), 'shardline-hot-')), 'router.yaml')
writeFileSync(config, `listen:
  data: 127.0.0.1:0
  admin: 127.0.0.1:0
pools:
  main:
    hotKeys:
      minRate: 20
      copies: 4
      copyTtlMs: ${COPY_TTL_MS}
      counterShards: 4
      counterWindowMs: 50
    shards:
${shards.map((s, i) => `      - name: s${i}\n        primary: 127.0.0.1:${s.port}`).join('\n')}
`)
const [a, b] = await Promise.all([startRouterProcess(t, config), startRouterProcess(t, config)])
const clients = shards.map((s) => new Redis({ port: s.port, host: '127.0.0.1' }))
t.teardown(() => clients.forEach((c) => c.disconnect()))

const json = { 'content-type': 'application/json' }
const set = (router: { url: string }, key: string, value: unknown) => fetch(`${router.url}/${key}`, { method: 'POST', headers: json, body: JSON.stringify({ value }) })
const get = async (router: { url: string }, key: string) => {
  const response = await fetch(`${router.url}/${key}`)
  return response.status === 404 ? undefined : (await response.json()).value
}
/** Reads key through router often enough to make it hot there, then checks it is spread. */
async function makeHot(router: { url: string; adminUrl: string }, key: string): Promise<void> {
  await waitFor(async () => {
    await Promise.all(Array.from({ length: 50 }, () => get(router, key)))
    const { pools } = await (await fetch(`${router.adminUrl}/admin/hotkeys`)).json()
    return pools.main.some((hitter: { key: string; spread: boolean }) => hitter.key === key && hitter.spread)
  }, 10_000, () => `${key} never became hot`)
}

t.test('a hot key is read from copies on distinct shards', async (t) => {
  await set(a, 'hot', 'v1')
  await makeHot(a, 'hot')
  // Copies are filled on demand and live for copyTtl: read until every copy has been filled.
  const holders = await waitFor(async () => {
    const values = await Promise.all(Array.from({ length: 50 }, () => get(a, 'hot')))
    t.ok(values.every((v) => v === 'v1'), 'every read returns the value')
    const found = await Promise.all(clients.map(async (c) => (await Promise.all([0, 1, 2, 3].map((i) => c.exists(`hot\u0000h${i}`)))).some(Boolean)))
    return found.filter(Boolean).length >= 3 && found.filter(Boolean).length
  }, 10_000, () => 'copies never spread over 3 of the 4 shards')
  t.ok(holders >= 3, `copies on ${holders} of 4 shards`)
  const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text()
  t.match(metrics, /shardline_router_hot_copy_reads_total\{outcome="hit"\} [1-9]/)
  t.match(metrics, /shardline_router_hot_copy_fills_total [1-9]/)
  t.match(metrics, /shardline_router_hot_keys [1-9]/)
})

t.test('writes: never stale through the writing router, stale at most copyTtl through the other', async (t) => {
  await set(a, 'coherent', 'old')
  await Promise.all([makeHot(a, 'coherent'), makeHot(b, 'coherent')])
  for (let round = 0; round < 3; round++) {
    const value = `new-${round}`
    const wroteAt = Date.now()
    t.equal((await set(a, 'coherent', value)).status, 200)
    const fromWriter = await Promise.all(Array.from({ length: 40 }, () => get(a, 'coherent')))
    t.ok(fromWriter.every((v) => v === value), `round ${round}: the writer never reads an old value`)
    await waitFor(async () => (await Promise.all(Array.from({ length: 20 }, () => get(b, 'coherent')))).every((v) => v === value), COPY_TTL_MS * 3, () => 'the other router never caught up')
    t.ok(Date.now() - wroteAt <= COPY_TTL_MS + 500, `round ${round}: the other router caught up after ${Date.now() - wroteAt} ms`)
  }
  t.equal((await fetch(`${a.url}/coherent`, { method: 'DELETE' })).status, 200)
  const afterDelete = await Promise.all(Array.from({ length: 40 }, () => get(a, 'coherent')))
  t.ok(afterDelete.every((v) => v === undefined), 'a delete is seen at once by the router that made it')
  await waitFor(async () => (await Promise.all(Array.from({ length: 20 }, () => get(b, 'coherent')))).every((v) => v === undefined), COPY_TTL_MS * 3)
})

t.test('a hot counter through two routers ends with the exact sum', async (t) => {
  const increment = (router: { url: string }, by: number) => fetch(`${router.url}/clicks/incr`, { method: 'POST', headers: json, body: JSON.stringify({ by }) })
  // Make the counter hot on both routers first, then 32 clients add 1..3 at a time.
  let expected = 0
  await waitFor(async () => {
    await Promise.all(Array.from({ length: 40 }, (_, i) => increment(i % 2 ? a : b, 1)))
    expected += 40
    const hot = await Promise.all([a, b].map(async (r) => (await (await fetch(`${r.adminUrl}/admin/hotkeys`)).json()).pools.main.some((h: { key: string; spread: boolean }) => h.key === 'clicks' && h.spread)))
    return hot.every(Boolean)
  }, 10_000, () => 'the counter never became hot on both routers')
  const results = await Promise.all(Array.from({ length: 32 }, async (_, client) => {
    let sum = 0
    for (let i = 0; i < 60; i++) {
      const by = 1 + ((client + i) % 3)
      const response = await increment(client % 2 ? a : b, by)
      if (response.status !== 200) throw new Error(`increment failed: ${response.status}`)
      sum += by
    }
    return sum
  }))
  expected += results.reduce((x, y) => x + y, 0)
  for (const router of [a, b]) t.same(await (await fetch(`${router.url}/clicks/counter`)).json(), { value: expected }, 'exact through either router')
  const subCounters = await Promise.all(clients.map(async (c) => (await Promise.all([0, 1, 2, 3].map((i) => c.exists(`clicks\u0000c${i}`)))).some(Boolean)))
  t.ok(subCounters.filter(Boolean).length >= 2, `sub-counters on ${subCounters.filter(Boolean).length} shards`)
  const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text()
  const batches = Number(/shardline_router_counter_batch_size_count (\d+)/.exec(metrics)![1])
  const batched = Number(/shardline_router_counter_batch_size_sum (\d+)/.exec(metrics)![1])
  t.ok(batched / batches >= 2, `${batched} increments in ${batches} writes on router a`)
})
