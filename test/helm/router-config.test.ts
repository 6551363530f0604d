// The router config helm/shardline renders (scripts/render-router-config.ts, the same as the chart's
// "shardline.routerConfig"): it parses as a router config, with the tenants, shard password and TLS
// files auth and tls turn on, and a real router process serves it with its token files.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { parseRouterConfig } from '../../router/config.ts'
import { owningShards } from '../../router/pool-layout.ts'
import { chartFullname, loadChartValues, mergeValues, renderRouterConfig } from '../../scripts/render-router-config.ts'
import { run, startRouterProcess } from '../helpers/processes.ts'

const SCRIPT = new URL('../../scripts/render-router-config.ts', import.meta.url).pathname
const release = { release: 'cache', namespace: 'prod' }
type Pools = Record<string, { shards: Array<{ name: string; primary: { address: string; admin: string }; replicas: Array<{ address: string; admin: string }> }>; hotKeys?: Record<string, unknown> }>

t.test('the default values render a config the router accepts: 3 shards x 3 copies on stable DNS names', async (t) => {
  const config = renderRouterConfig(loadChartValues(), release)
  const parsed = parseRouterConfig(stringify(config), 'router.yaml')
  t.same(Object.keys(parsed.pools), ['main'])
  t.equal(parsed.defaultPool, 'main')
  t.same(parsed.listen, { data: { host: '0.0.0.0', port: 8080 }, admin: { host: '0.0.0.0', port: 9090 } })
  const shards = parsed.pools.main.shards
  t.same(shards.map((s) => s.name), ['s0', 's1', 's2'])
  t.same(shards[1].primary, { address: { host: 'cache-shardline-main-s1-0.cache-shardline-shards.prod.svc.cluster.local', port: 6380 }, admin: { host: 'cache-shardline-main-s1-0.cache-shardline-shards.prod.svc.cluster.local', port: 9380 } })
  t.same(shards[1].replicas.map((r) => r.address.host), ['cache-shardline-main-s1-1.cache-shardline-shards.prod.svc.cluster.local', 'cache-shardline-main-s1-2.cache-shardline-shards.prod.svc.cluster.local'])
  t.equal(parsed.hashing.pointsPerShard, 8000)
  t.equal(parsed.connections.maxQueue, 8192)
  t.equal(parsed.workers, 1)
  t.same(parsed.migration, { windowMs: 1_800_000 }, 'the migration window: 30 min, from values.yaml')
  t.same(owningShards(parsed.pools.main), ['s0', 's1', 's2'], 'no shard drains by default')
})

t.test('drainingShards: the last K shards are draining, own no keys, and stay in the pool', async (t) => {
  const values = mergeValues(loadChartValues(), { pools: { main: { shards: 4, drainingShards: 1 } }, router: { config: { migration: { windowMs: 0 } } } })
  const parsed = parseRouterConfig(stringify(renderRouterConfig(values, release)), 'router.yaml')
  t.same(parsed.pools.main.shards.map((shard) => [shard.name, shard.draining]), [['s0', false], ['s1', false], ['s2', false], ['s3', true]])
  t.same(owningShards(parsed.pools.main), ['s0', 's1', 's2'], 'the ring is over the shards that do not drain')
  t.equal(parsed.migration.windowMs, 0, 'router.config.migration passes through')
  for (const [shards, drainingShards, standbyShards] of [[4, 4, 0], [1, 2, 0], [4, 2, 2]]) {
    t.throws(() => renderRouterConfig(mergeValues(loadChartValues(), { pools: { main: { shards, drainingShards, standbyShards } } }), release), new RegExp(`pools\\.main\\.drainingShards \\(${drainingShards}\\) \\+ standbyShards \\(${standbyShards}\\) must be less than pools\\.main\\.shards \\(${shards}\\)`))
  }
})

t.test('standbyShards: the last K shards are left out of the config; the ones before them may drain', async (t) => {
  const render = (pool: Record<string, number>) => parseRouterConfig(stringify(renderRouterConfig(mergeValues(loadChartValues(), { pools: { main: pool } }), release)), 'router.yaml')
  // Scale out, step 1: s3 runs but the routers' config is the 3-shard one.
  t.same(render({ shards: 4, standbyShards: 1 }), render({ shards: 3 }))
  // Scale in, step 2: drained s3 leaves the config while it still runs.
  const parsed = render({ shards: 5, drainingShards: 1, standbyShards: 1 })
  t.same(parsed.pools.main.shards.map((shard) => [shard.name, shard.draining]), [['s0', false], ['s1', false], ['s2', false], ['s3', true]])
  t.same(owningShards(parsed.pools.main), ['s0', 's1', 's2'])
})

t.test('pools, routes, hot keys, limits and extraConfig from values reach the config', async (t) => {
  const values = mergeValues(loadChartValues(), {
    pools: { main: { shards: 2, replicasPerShard: 1, hotKeys: { copies: 4, minRate: 100 } }, sessions: { shards: 1, replicasPerShard: 0, maxMemoryMiB: 64 } },
    routes: [{ prefix: 'session:', pool: 'sessions' }],
    router: { config: { limits: { maxBatchOps: 50 } }, extraConfig: { accessLog: true } },
  })
  const parsed = parseRouterConfig(stringify(renderRouterConfig(values, release)), 'router.yaml')
  t.same(Object.keys(parsed.pools).sort(), ['main', 'sessions'])
  t.equal(parsed.pools.main.shards.length, 2)
  t.equal(parsed.pools.main.shards[0].replicas.length, 1)
  t.equal(parsed.pools.sessions.shards[0].replicas.length, 0)
  t.match(parsed.pools.main.hotKeys, { copies: 4, minRate: 100 })
  t.same(parsed.routes, [{ prefix: 'session:', pool: 'sessions' }])
  t.equal(parsed.limits.maxBatchOps, 50)
  t.equal(parsed.accessLog, true)
})

t.test('auth and tls values: tenants read token files, the shard password and CA reach shardAccess', async (t) => {
  const values = mergeValues(loadChartValues(), {
    auth: { metrics: 'token', tenants: [{ name: 'ops', permissions: ['admin'] }, { name: 'web', permissions: ['read', 'write'], namespace: 'web', pool: 'main', rateLimit: { rate: 100, burst: 200, mode: 'enforce' } }] },
    tls: { enabled: true, minVersion: 'TLSv1.3' },
  })
  const parsed = parseRouterConfig(stringify(renderRouterConfig(values, release)), 'router.yaml')
  t.same(parsed.tenants, [
    { name: 'ops', tokens: [{ file: '/var/run/shardline/auth/token-ops' }], permissions: ['admin'], namespace: null, pool: null, rateLimit: null },
    { name: 'web', tokens: [{ file: '/var/run/shardline/auth/token-web' }], permissions: ['read', 'write'], namespace: 'web', pool: 'main', rateLimit: { rate: 100, burst: 200, mode: 'enforce' } },
  ])
  t.same(parsed.admin, { metrics: 'token' })
  t.same(parsed.tls, { cert: '/var/run/shardline/tls/tls.crt', key: '/var/run/shardline/tls/tls.key', minVersion: 'TLSv1.3' })
  t.same(parsed.shardAccess, { password: { file: '/var/run/shardline/auth/shard-password' }, tls: { ca: '/var/run/shardline/tls/ca.crt' } })
  const open = parseRouterConfig(stringify(renderRouterConfig(mergeValues(loadChartValues(), { auth: { enabled: false } }), release)), 'router.yaml')
  t.same([open.tenants, open.shardAccess, open.tls], [[], { password: null, tls: null }, null], 'auth and tls off: an open router, as before')
})

t.test('names follow the chart: release containing the chart name, overrides, the 52-character StatefulSet limit', async (t) => {
  const values = loadChartValues()
  t.equal(chartFullname(values, 'shardline'), 'shardline')
  t.equal(chartFullname(values, 'my-shardline-prod'), 'my-shardline-prod')
  t.equal(chartFullname(values, 'cache'), 'cache-shardline')
  t.equal(chartFullname({ ...values, fullnameOverride: 'sl' }, 'cache'), 'sl')
  t.equal(chartFullname({ ...values, nameOverride: 'kv' }, 'cache'), 'cache-kv')
  t.throws(() => renderRouterConfig(values, { release: 'a-very-long-release-name-for-a-cache-cluster', namespace: 'x' }), /longer than 52 characters/)
})

t.test('the script prints the config, with listen addresses overridden', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-render-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const override = join(dir, 'values.yaml')
  writeFileSync(override, 'pools:\n  main:\n    shards: 1\n')
  const result = await run(process.execPath, [SCRIPT, '-f', override, '--release', 'cache', '--namespace', 'prod', '--listen-data', '127.0.0.1:0', '--listen-admin', '127.0.0.1:0'])
  t.equal(result.code, 0, result.stderr)
  const parsed = parseRouterConfig(result.stdout, 'script output')
  t.equal(parsed.pools.main.shards.length, 1)
  t.same(parsed.listen.data, { host: '127.0.0.1', port: 0 })
  const bad = await run(process.execPath, [SCRIPT, '--release', 'a-very-long-release-name-for-a-cache-cluster'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /longer than 52 characters/)
  writeFileSync(override, 'pools:\n  main:\n    shards: 2\n    drainingShards: 2\n')
  const draining = await run(process.execPath, [SCRIPT, '-f', override])
  t.equal(draining.code, 2)
  t.match(draining.stderr, /pools\.main\.drainingShards \(2\) \+ standbyShards \(0\) must be less than pools\.main\.shards \(2\): a pool needs at least one shard that owns keys/)
})

t.test('a real router process loads the rendered default config and shows its route tree', async (t) => {
  // The router dials every shard as it starts. Shard pods' DNS names resolve only inside
  // Kubernetes (and a test sends nothing off this machine), so each destination is moved to a
  // loopback port where nothing listens; names, pools, roles and settings stay as rendered.
  const config = renderRouterConfig(loadChartValues(), release) as { listen: Record<string, string>; pools: Pools }
  config.listen = { data: '127.0.0.1:0', admin: '127.0.0.1:0' }
  let port = 1
  for (const pool of Object.values(config.pools)) {
    for (const shard of pool.shards) {
      for (const destination of [shard.primary, ...shard.replicas]) {
        destination.address = `127.0.0.1:${port++}`
        destination.admin = `127.0.0.1:${port++}`
      }
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'shardline-chart-router-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // The auth Secret's files, where the config names them, as its volume would hold them.
  const secrets = { 'token-admin': 'admin-token-from-the-secret', 'token-app': 'app-token-from-the-secret', 'shard-password': 'shard-password-from-the-secret' }
  for (const [key, value] of Object.entries(secrets)) writeFileSync(join(dir, key), `${value}\n`)
  const file = join(dir, 'router.yaml')
  writeFileSync(file, stringify(config).replaceAll('/var/run/shardline/auth/', `${dir}/`))
  const router = await startRouterProcess(t, file)
  t.equal((await fetch(`${router.adminUrl}/healthz`)).status, 200)
  const asAdmin = { headers: { authorization: `Bearer ${secrets['token-admin']}` } }
  t.equal((await fetch(`${router.adminUrl}/admin/config`)).status, 401, 'the admin port wants the admin tenant\'s token')
  const admin = (await (await fetch(`${router.adminUrl}/admin/config`, asAdmin)).json()) as { generation: number; lastError: string | null; tree: unknown }
  t.equal(admin.generation, 1)
  t.equal(admin.lastError, null)
  for (const secret of Object.values(secrets)) t.notOk(JSON.stringify(admin).includes(secret), '/admin/config shows no token or password')
  const tree = JSON.stringify(admin.tree)
  for (const shard of ['s0', 's1', 's2']) t.match(tree, `"${shard}"`, `the route tree has shard ${shard}`)
  const shards = (await (await fetch(`${router.adminUrl}/admin/shards`, asAdmin)).json()) as { destinations: Array<{ shard: string; role: string }> }
  t.equal(shards.destinations.length, 9, '3 shards x (primary + 2 replicas)')
  t.equal(shards.destinations.filter((d) => d.role === 'primary').length, 3)
  t.equal((await fetch(`${router.adminUrl}/readyz`)).status, 503, 'not ready while no shard answers')
  const stopped = await router.stop()
  t.equal(stopped.code, 0, 'drains and exits 0 on SIGTERM')
})
