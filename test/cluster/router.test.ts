// The router end to end with real processes: two shards of a primary and a replica each, the
// seed API, batches, admin endpoints and the proxy, config reloads (edit, bad file, ConfigMap-style
// symlink swap), kill -9 of a primary under load, its return, and SIGTERM.
import t from 'tap'
import { mkdtempSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { startRouterProcess, startShardProcess, waitFor, type ShardProcess } from '../helpers/processes.ts'

const [s0, s0replica, s1, s1replica] = await Promise.all(['s0', 's0.replica1', 's1', 's1.replica1'].map((name) => startShardProcess(t, ['--name', name])))
const address = (shard: ShardProcess) => `{ address: 127.0.0.1:${shard.port}, admin: 127.0.0.1:${shard.adminPort} }`
const routerYaml = (maxKeyBytes: number) => `listen:
  data: 127.0.0.1:0
  admin: 127.0.0.1:0
pools:
  main:
    shards:
      - name: s0
        primary: ${address(s0)}
        replicas: [${address(s0replica)}]
      - name: s1
        primary: ${address(s1)}
        replicas: [${address(s1replica)}]
limits:
  maxKeyBytes: ${maxKeyBytes}
`
// Laid out like a mounted ConfigMap: router.yaml -> ..data/router.yaml, ..data -> a versioned dir.
const configDir = mkdtempSync(join(tmpdir(), 'shardline-router-'))
function publishConfig(text: string, version: string): void {
  mkdirSync(join(configDir, version))
  writeFileSync(join(configDir, version, 'router.yaml'), text)
  symlinkSync(version, join(configDir, '..data_tmp'))
  renameSync(join(configDir, '..data_tmp'), join(configDir, '..data'))
}
publishConfig(routerYaml(250), '..v1')
symlinkSync('..data/router.yaml', join(configDir, 'router.yaml'))
const configFile = join(configDir, 'router.yaml')

const router = await startRouterProcess(t, configFile)
const api = async (path: string, init: RequestInit = {}) => {
  const response = await fetch(`${router.url}${path}`, init)
  return { status: response.status, body: await response.json() }
}
const admin = async (path: string) => (await fetch(`${router.adminUrl}${path}`)).json()
const set = (key: string, value: unknown, ttl?: number) =>
  api(`/${encodeURIComponent(key)}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value, ...(ttl ? { ttl } : {}) }) })
const shardOf = async (key: string): Promise<string> =>
  (await admin(`/admin/route/${encodeURIComponent(key)}`)).steps.find((step: { route: string }) => step.route.startsWith('pool ')).decision.replace('shard ', '')

t.test('the seed API round trip through the router', async (t) => {
  t.same(await set('k', 'v', 60), { status: 200, body: { stored: true } })
  t.same(await api('/k'), { status: 200, body: { value: 'v' } })
  t.same(await api('/k', { method: 'DELETE' }), { status: 200, body: { deleted: true } })
  t.same(await api('/k'), { status: 404, body: { error: 'not found', code: 'not_found' } })
})

t.test('keys land on the shard /admin/route names, stored with their TTL', async (t) => {
  const primaries: Record<string, Redis> = {
    s0: new Redis({ port: s0.port, host: '127.0.0.1' }),
    s1: new Redis({ port: s1.port, host: '127.0.0.1' }),
  }
  t.teardown(() => Object.values(primaries).forEach((r) => r.disconnect()))
  const counts: Record<string, number> = { s0: 0, s1: 0 }
  for (let i = 0; i < 40; i++) {
    const key = `user:${i}/ä ?#`
    await set(key, { i }, 100)
    const shard = await shardOf(key)
    counts[shard]++
    t.equal(await primaries[shard].get(Buffer.from(key, 'utf8').toString()), JSON.stringify({ i }), `${key} on ${shard}`)
    t.ok((await primaries[shard].ttl(key)) > 90)
  }
  t.ok(counts.s0 > 5 && counts.s1 > 5, `both shards used (${JSON.stringify(counts)})`)
})

t.test('counters: increments, the exact total, and a value that is not a counter', async (t) => {
  const incr = (key: string, body: unknown) => api(`/${key}/incr`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  t.same(await incr('visits', { by: 5 }), { status: 200, body: { value: 5 } })
  t.same(await incr('visits', {}), { status: 200, body: { value: 6 } }, 'by defaults to 1')
  t.same(await api('/visits/counter'), { status: 200, body: { value: 6 } })
  t.same(await api('/never/counter'), { status: 200, body: { value: 0 } })
  await set('words', 'not a number')
  t.match(await incr('words', { by: 1 }), { status: 409, body: { code: 'not_a_counter' } })
  t.match(await incr('visits', { by: 1.5 }), { status: 400, body: { code: 'invalid_request' } })
})

t.test('a batch of gets and sets across shards', async (t) => {
  const ops = Array.from({ length: 20 }, (_, i) => ({ op: 'set', key: `batch:${i}`, value: i }))
  const stored = await api('/-/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ops }) })
  t.equal(stored.status, 200)
  t.ok(stored.body.results.every((r: { stored: boolean }) => r.stored))
  const read = await api('/-/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ops: ops.map(({ key }) => ({ op: 'get', key })) }) })
  t.same(read.body.results, ops.map(({ value }) => ({ value })))
})

t.test('admin: shards, config, readiness, and the proxy to a shard admin', async (t) => {
  const shards = await admin('/admin/shards')
  t.equal(shards.destinations.length, 4)
  t.ok(shards.destinations.every((d: { knockedOut: boolean; connections: number }) => !d.knockedOut && d.connections > 0))
  t.match(shards.destinations[0].replication, { role: 'standalone', warmingUp: false, peers: [] }, 'each destination\'s replication state, from its own /stats')
  t.match(await admin('/admin/config'), { generation: 1, tree: { default: { pool: 'main' } } })
  t.same(await admin('/readyz'), { status: 'ready' })
  t.match(await admin('/admin/shards/s1/stats'), { name: 's1' })
  t.match(await admin('/admin/shards/s0.replica1/stats'), { name: 's0.replica1' })
  t.match(await admin('/admin/shards/nope/stats'), { code: 'unknown_shard' })
  const metrics = await (await fetch(`${router.adminUrl}/metrics`)).text()
  for (const name of ['shardline_router_requests_total{op="set",code="200"}', 'shardline_router_request_duration_seconds_bucket', 'shardline_router_destination_connections', 'shardline_router_destination_in_flight', 'shardline_router_destination_queued', 'shardline_router_destination_knocked_out']) {
    t.ok(metrics.includes(name), name)
  }
})

t.test('config reload: a good edit applies, a bad file is refused, a symlink swap is seen', async (t) => {
  const generation = async () => (await admin('/admin/config')).generation
  publishConfig(routerYaml(10), '..v2')
  await waitFor(async () => (await generation()) === 2, 10_000, () => 'the symlink swap was not picked up')
  t.match(await api(`/${'k'.repeat(11)}`), { status: 400, body: { code: 'key_too_long' } }, 'the new limit applies')
  publishConfig('pools: [not a mapping', '..v3')
  await waitFor(async () => (await admin('/admin/config')).lastError, 10_000, () => 'the bad file was not noticed')
  t.equal(await generation(), 2, 'the last good config keeps serving')
  t.match(await (await fetch(`${router.adminUrl}/metrics`)).text(), /shardline_router_config_reloads_total\{outcome="failure"\} 1/)
  t.equal((await set('still', 'serving')).status, 200)
  router.child.kill('SIGHUP')
  publishConfig(routerYaml(250), '..v4')
  await waitFor(async () => (await generation()) >= 3, 10_000, () => 'the fixed file was not loaded')
  t.equal((await set('k'.repeat(11), 'long keys again')).status, 200)
})

t.test('kill -9 of a primary under load: its keys are served by the replica within 1.5 s, and it comes back', async (t) => {
  const keys: string[] = []
  for (let i = 0; keys.length < 8; i++) if ((await shardOf(`fo:${i}`)) === 's0') keys.push(`fo:${i}`)
  // The load writes some of s0's keys; recovery is checked on the others.
  const [loadKeys, checkKeys] = [keys.slice(0, 5), keys.slice(5)]
  let failures = 0
  let running = true
  const load = (async () => {
    while (running) {
      const responses = await Promise.all(loadKeys.map((key) => set(key, 'x').catch(() => ({ status: 0 }))))
      failures += responses.filter((r) => r.status !== 200).length
    }
  })()
  await waitFor(() => failures === 0, 100)
  const killedAt = Date.now()
  s0.child.kill('SIGKILL')
  // Recovery: a write and a read of every s0 key succeed.
  let last: unknown[] = []
  const recoveredAt = await waitFor(async () => {
    last = await Promise.all(checkKeys.map(async (key) => [await set(key, 'after'), await api(`/${key}`)]))
    return last.every((pair) => JSON.stringify(pair) === JSON.stringify([{ status: 200, body: { stored: true } }, { status: 200, body: { value: 'after' } }])) && Date.now()
  }, 10_000, () => `reads and writes for s0 keys never recovered: ${JSON.stringify(last)}`)
  running = false
  await load
  t.ok(recoveredAt - killedAt <= 1500, `recovered ${recoveredAt - killedAt} ms after kill -9`)
  const primary = (await admin('/admin/shards')).destinations.find((d: { name: string }) => d.name === 'main/s0/primary')
  t.match(primary, { knockedOut: true, knockouts: 1, replication: { error: /its \/stats could not be read/ } })
  t.match(await (await fetch(`${router.adminUrl}/metrics`)).text(), /shardline_router_knockouts_total\{pool="main",shard="s0",role="primary"\} 1/)

  const restarted = await startShardProcess(t, ['--name', 's0', '--port', String(s0.port), '--admin-port', String(s0.adminPort)])
  await waitFor(async () => !(await admin('/admin/shards')).destinations.find((d: { name: string }) => d.name === 'main/s0/primary').knockedOut, 15_000, () => 'the primary was never re-admitted')
  await set(keys[0], 'back on the primary')
  const direct = new Redis({ port: restarted.port, host: '127.0.0.1' })
  t.teardown(() => direct.disconnect())
  t.equal(await direct.get(keys[0]), JSON.stringify('back on the primary').slice(1, -1), 'writes go to the primary again')
})

t.test('SIGTERM: the router drains and exits 0 within 5 s', async (t) => {
  const started = Date.now()
  t.equal((await router.stop('SIGTERM')).code, 0)
  t.ok(Date.now() - started < 5000)
})
