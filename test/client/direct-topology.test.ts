// The direct-mode client's topology loader against a router's admin port in-process: the option
// checks, load failures by code, following a changed config (and not rebuilding for the same one
// at a new generation), an outage logged once and the current topology kept, config files.
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkTopologySource, TopologyFeed, type Topology } from '../../client/topology.ts'
import { ShardlineError, type TopologySource } from '../../client/types.ts'
import { DEFAULT_CONNECTIONS } from '../../common/http-server.ts'
import { createLogger, type Logger } from '../../common/logger.ts'
import { createRouterAdmin } from '../../router/admin.ts'
import { parseRouterConfig, type RouterConfig } from '../../router/config.ts'
import { RouterMetrics } from '../../router/metrics.ts'
import type { RouteTree } from '../../router/route-tree.ts'
import { waitFor } from '../helpers/processes.ts'

const yaml = (routes: string) => `pools:
  main:
    shards: [{ name: s0, primary: 127.0.0.1:7000 }]
  other:
    shards: [{ name: t0, primary: 127.0.0.1:7001 }]
routes: ${routes}
defaultPool: main
`
/** What the in-process router serves: a test changes these as a reload would. */
let served: RouterConfig = parseRouterConfig(yaml('[]'), 'router.yaml')
let generation = 1
let down = false
const admin = await createRouterAdmin({
  log: createLogger('admin-test', 'silent'),
  metrics: new RouterMetrics(() => [], () => generation),
  connections: DEFAULT_CONNECTIONS,
  tree: () => {
    if (down) throw new Error('the router is unwell')
    return { config: served, layouts: new Map(), access: { open: true } } as unknown as RouteTree
  },
  started: () => true,
  reloads: () => ({ generation, lastError: null, loadedAt: new Date().toISOString() }),
})
await admin.listen({ host: '127.0.0.1', port: 0 })
t.teardown(() => admin.close())
const adminUrl = `http://127.0.0.1:${(admin.server.address() as AddressInfo).port}`

/** A logger that keeps the messages of warn and info. */
function recordingLog() {
  const lines: { level: string; message: string }[] = []
  const log = { warn: (_details: unknown, message: string) => lines.push({ level: 'warn', message }), info: (_details: unknown, message: string) => lines.push({ level: 'info', message }) } as unknown as Logger
  return { log, lines }
}

function feedOf(source: TopologySource, onChange: (topology: Topology) => void = () => {}, log = recordingLog().log): TopologyFeed {
  const feed = new TopologyFeed({ source, fetchTimeoutMs: 1000, log, onChange })
  t.teardown(() => feed.close())
  return feed
}

const failure = async (promise: Promise<unknown>): Promise<ShardlineError> => {
  const error = await promise.then(() => null, (error: unknown) => error)
  if (!(error instanceof ShardlineError)) throw new Error(`expected a ShardlineError, got ${String(error)}`)
  return error
}

t.test('the topology option: exactly one source, an http(s) admin URL, refreshMs in range', async (t) => {
  const refusals: unknown[] = [null, 'http://router:9090', {}, { adminUrl, configFile: 'r.yaml' }, { adminUrl: 'ftp://router:9090' }, { adminUrl: 'router:9090' }, { adminUrl: 42 }, { configFile: '' },
    { adminUrl, refreshMs: 99 }, { adminUrl, refreshMs: 3_600_001 }, { adminUrl, refreshMs: 150.5 }, { adminUrl, refreshMs: '1000' }]
  for (const source of refusals) {
    t.throws(() => checkTopologySource(source as TopologySource), { name: 'ShardlineError', code: 'invalid_argument', message: /^topology: / }, JSON.stringify(source))
  }
  t.same(checkTopologySource({ adminUrl: `${adminUrl}/` }), { adminUrl, refreshMs: 5000 }, 'a trailing slash goes, refreshMs defaults to 5 s')
  t.same(checkTopologySource({ configFile: 'r.yaml' }), { configFile: 'r.yaml' })
})

t.test('the first load: the router\'s config and generation; failures say why, with code topology_unavailable', async (t) => {
  const topology = await feedOf({ adminUrl }).first()
  t.equal(topology.generation, 1)
  t.same(topology.config.routes, [])
  t.equal(topology.config.pools.main.shards[0].primary.address.port, 7000)

  const nothing = await failure(feedOf({ adminUrl: 'http://127.0.0.1:1' }).first())
  t.match(nothing, { code: 'topology_unavailable', message: /127\.0\.0\.1:1\/admin\/topology: cannot read the topology/ })
  const notARouter = await failure(feedOf({ adminUrl: `${adminUrl}/metrics` }).first())
  t.match(notARouter, { code: 'topology_unavailable', message: /answered 404/ })

  served = { ...served, routes: [{ prefix: 'x:', pool: 'nowhere' }] }
  t.teardown(() => void (served = parseRouterConfig(yaml('[]'), 'router.yaml')))
  const invalid = await failure(feedOf({ adminUrl }).first())
  t.match(invalid, { code: 'topology_unavailable', message: /not a valid router config: .*routes\[0\]\.pool: names no pool/ })
})

t.test('a failed first load is tried again by the next call', async (t) => {
  down = true
  const feed = feedOf({ adminUrl })
  t.match(await failure(feed.first()), { message: /answered 500/ })
  down = false
  t.equal((await feed.first()).generation, 1)
})

t.test('refresh: a changed config is followed, a new generation of the same one is not rebuilt, an outage is logged once', async (t) => {
  generation = 1
  served = parseRouterConfig(yaml('[]'), 'router.yaml')
  const changes: Topology[] = []
  const { log, lines } = recordingLog()
  const feed = feedOf({ adminUrl, refreshMs: 100 }, (topology) => changes.push(topology), log)
  await feed.first()

  generation = 2
  served = parseRouterConfig(yaml('[{ prefix: "x:", pool: other }]'), 'router.yaml')
  await waitFor(() => changes.length === 1, 5000, () => 'the changed config was not followed')
  t.equal(changes[0].generation, 2)
  t.same(changes[0].config.routes, [{ prefix: 'x:', pool: 'other' }])
  t.equal(feed.generation, 2)

  generation = 3
  await waitFor(() => feed.generation === 3, 5000, () => 'the new generation was not seen')
  t.equal(changes.length, 1, 'the same config at a new generation builds nothing')

  down = true
  const outageStart = Date.now()
  await waitFor(() => Date.now() - outageStart > 600 && lines.length > 0, 5000)
  t.same(lines, [{ level: 'warn', message: 'topology refresh failed: the current route tree keeps serving, and the refresh is retried' }], 'several failed refreshes, one warning')
  t.equal(feed.generation, 3, 'the current topology stays')
  t.equal((await feed.first()).generation, 3, 'and serves')

  generation = 4
  served = parseRouterConfig(yaml('[{ prefix: "y:", pool: other }]'), 'router.yaml')
  down = false
  await waitFor(() => changes.length === 2, 5000, () => 'the config after the outage was not followed')
  t.equal(changes[1].generation, 4)
  t.same(lines.at(-1), { level: 'info', message: 'topology refresh works again' })
})

t.test('a config file: read once, generation 1; an unreadable or invalid one fails with its reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-topology-'))
  const file = join(dir, 'router.yaml')
  writeFileSync(file, yaml('[{ prefix: "s:", pool: other }]'))
  const topology = await feedOf({ configFile: file }).first()
  t.equal(topology.generation, 1)
  t.same(topology.config.routes, [{ prefix: 's:', pool: 'other' }])
  t.match(await failure(feedOf({ configFile: join(dir, 'missing.yaml') }).first()), { code: 'topology_unavailable', message: /missing\.yaml: cannot read the config/ })
  writeFileSync(file, yaml('[{ prefix: "s:", pool: nowhere }]'))
  t.match(await failure(feedOf({ configFile: file }).first()), { code: 'topology_unavailable', message: /routes\[0\]\.pool: names no pool/ })
})
