// GET /admin/topology: the routing part of the router's config with its generation (in the config
// file's format, without the router's listen addresses or the shards' admin addresses) and its open
// migration windows; and a direct-mode client's loader reading it back into the same config.
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { TopologyFeed } from '../../client/topology.ts'
import { DEFAULT_CONNECTIONS } from '../../common/http-server.ts'
import { HashRing } from '../../common/ring.ts'
import { createLogger } from '../../common/logger.ts'
import { createRouterAdmin, topologyConfig } from '../../router/admin.ts'
import { parseRouterConfig } from '../../router/config.ts'
import { RouterMetrics } from '../../router/metrics.ts'
import type { RouteTree } from '../../router/route-tree.ts'

// After the router's own ${ENV} interpolation a prefix may hold "${…}" text: the client must not interpolate it again.
process.env.SHARDLINE_TEST_PREFIX = '${HOME}:'
const config = parseRouterConfig(`listen: { data: 127.0.0.1:8080, admin: 127.0.0.1:9090, resp: 127.0.0.1:6390 }
pools:
  main:
    hotKeys: { share: 0.01, rate: 500, copies: 4 }
    shards:
      - { name: s0, primary: { address: 10.0.0.1:7000, admin: 10.0.0.1:7100 }, replicas: [{ address: 10.0.0.2:7000, admin: 10.0.0.2:7100 }] }
      - { name: s1, primary: 10.0.0.3:7000, draining: true }
      - { name: s2, primary: 10.0.0.4:7000 }
  sessions:
    hotKeys: { enabled: false }
    shards: [{ name: t0, primary: 10.0.1.1:7000 }]
routes:
  - { prefix: "session:", pool: sessions }
  - { prefix: "ключ\\u0001🔑\\u2028", pool: sessions }
  - { prefix: "\${SHARDLINE_TEST_PREFIX}", pool: sessions }
defaultPool: main
hashing: { pointsPerShard: 100 }
migration: { windowMs: 1000 }
health: { heartbeatMs: 250 }
connections: { perDestination: 3, timeoutMs: 700 }
limits: { maxKeyBytes: 100, maxValueBytes: 2048 }
accessLog: true
workers: 2
`, 'router.yaml')

// A reload 20 minutes ago changed main's owners: its window is open; sessions' closed.
const layouts = new Map([
  ['main', { ring: new HashRing(['s0', 's2'], 100), migration: { rings: [new HashRing(['s0', 's1', 's2'], 100), new HashRing(['s0'], 50)], deadline: Date.now() + 600_000 } }],
  ['sessions', { ring: new HashRing(['t0'], 100), migration: { rings: [new HashRing(['t1'], 100)], deadline: Date.now() - 1 } }],
])

const admin = await createRouterAdmin({
  log: createLogger('admin-test', 'silent'),
  metrics: new RouterMetrics(() => [], () => 7),
  connections: DEFAULT_CONNECTIONS,
  tree: () => ({ config, layouts, access: { open: true } }) as unknown as RouteTree,
  started: () => true,
  reloads: () => ({ generation: 7, lastError: null, loadedAt: new Date().toISOString() }),
})
await admin.listen({ host: '127.0.0.1', port: 0 })
t.teardown(() => admin.close())

t.test('the document: generation, pools with RESP addresses, routes and the routing settings; nothing else', async (t) => {
  const response = await admin.inject('/admin/topology')
  t.equal(response.statusCode, 200)
  const body = response.json()
  t.equal(body.generation, 7)
  t.same(Object.keys(body.config).sort(), ['connections', 'defaultPool', 'hashing', 'health', 'limits', 'migration', 'pools', 'routes'])
  t.same(body.config.pools.main.shards, [
    { name: 's0', primary: '10.0.0.1:7000', replicas: ['10.0.0.2:7000'], draining: false },
    { name: 's1', primary: '10.0.0.3:7000', replicas: [], draining: true },
    { name: 's2', primary: '10.0.0.4:7000', replicas: [], draining: false },
  ])
  t.match(body.config.pools.main.hotKeys, { enabled: true, share: 0.01, rate: 500, copies: 4 })
  t.same(body.config.routes.map((route: { prefix: string }) => route.prefix), ['session:', 'ключ\u0001🔑\u2028', '${HOME}:'])
  t.match(body.config, { defaultPool: 'main', hashing: { algorithm: 'ring', pointsPerShard: 100 }, migration: { windowMs: 1000 }, health: { heartbeatMs: 250 }, connections: { perDestination: 3, timeoutMs: 700 }, limits: { maxKeyBytes: 100, maxValueBytes: 2048 } })
  t.notMatch(response.body, /7100|8080|9090|6390/, 'no admin or listen address')
  t.same(Object.keys(body.migrations), ['main'], 'only open windows')
  t.same(body.migrations.main.previousRings, [{ shards: ['s0', 's1', 's2'], pointsPerShard: 100 }, { shards: ['s0'], pointsPerShard: 50 }])
  t.ok(body.migrations.main.msLeft > 590_000 && body.migrations.main.msLeft <= 600_000)
})

t.test('a direct client\'s loader reads it back into the same routing config, through the router\'s own parser', async (t) => {
  const feed = new TopologyFeed({ source: { adminUrl: `http://127.0.0.1:${(admin.server.address() as AddressInfo).port}` }, fetchTimeoutMs: 1000, log: createLogger('feed-test', 'silent'), onChange: () => {} })
  t.teardown(() => feed.close())
  const topology = await feed.first()
  t.equal(topology.generation, 7)
  t.same(topologyConfig(topology.config), topologyConfig(config))
  t.equal(topology.config.routes[2].prefix, '${HOME}:', 'not interpolated a second time')
  t.equal(topology.config.routes[1].prefix, 'ключ\u0001🔑\u2028')
  t.same(topology.migrations.main.previousRings.map((ring) => ring.shards), [['s0', 's1', 's2'], ['s0']])
})
