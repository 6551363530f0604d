// The router config: defaults, ${ENV} interpolation, errors that name the file, line and path (schema
// and cross-references alike), and each port's connection settings under the open-file limit.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '../../common/logger.ts'
import { loadRouterConfig, parseRouterConfig } from '../../router/config.ts'
import { FILE_RESERVE, connectionSettings, openFileLimit } from '../../router/connection-caps.ts'

function errorOf(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    return (error as Error).message
  }
  throw new Error('expected an error')
}

const minimal = `pools:
  main:
    shards:
      - name: s0
        primary: 127.0.0.1:7000
`

t.test('a minimal config gets the documented defaults', async (t) => {
  const config = parseRouterConfig(minimal, 'router.yaml')
  t.equal(config.defaultPool, 'main', 'the only pool is the default')
  t.same(config.listen, { data: { host: '127.0.0.1', port: 8080 }, admin: { host: '127.0.0.1', port: 9090 } })
  t.same(config.pools.main.shards[0], { name: 's0', primary: { address: { host: '127.0.0.1', port: 7000 } }, replicas: [], draining: false })
  t.same(config.migration, { windowMs: 30 * 60_000 }, 'a 30-minute migration window')
  t.match(config.health, { heartbeatMs: 500, failuresBeforeKnockout: 3 })
  t.match(config.connections, { perDestination: 2, timeoutMs: 1000 })
  t.same(config.limits, {
    maxKeyBytes: 250,
    maxValueBytes: 1048576,
    maxBatchOps: 1000,
    maxBatchResponseBytes: 16 * 1024 * 1024,
    maxInFlightResponseBytes: 128 * 1024 * 1024,
    maxJsonDepth: 64,
    maxConnections: 10_000,
    maxAdminConnections: 256,
    idleTimeoutMs: 5000,
    requestTimeoutMs: 10_000,
    maxRespConnections: 10_000,
    maxRespPipeline: 1024,
    maxRespQueryBufferBytes: 8 * 1024 * 1024,
    maxRespOutputBytes: 8 * 1024 * 1024,
  })
})

t.test('the RESP front is off unless listen.resp names an address', async (t) => {
  t.equal(parseRouterConfig(minimal, 'r.yaml').listen.resp, undefined)
  const on = parseRouterConfig(`listen: { resp: "127.0.0.1:6390" }\n${minimal}`, 'r.yaml')
  t.same(on.listen.resp, { host: '127.0.0.1', port: 6390 })
  t.throws(() => parseRouterConfig(`listen: { resp: 6390 }\n${minimal}`, 'r.yaml'), /listen\.resp: must be host:port/)
  const withLimits = (limits: string) => parseRouterConfig(`${minimal}limits:\n${limits}`, 'r.yaml')
  t.throws(() => withLimits('  maxRespPipeline: 0\n'), /limits\.maxRespPipeline: must be >= 1/)
  t.throws(() => withLimits('  maxRespConnections: 2000000\n'), /limits\.maxRespConnections: must be <= 1000000/)
  t.throws(() => withLimits('  maxRespQueryBufferBytes: 100000\n'), /r\.yaml:7: limits\.maxRespQueryBufferBytes: must be at least limits\.maxValueBytes \+ 64 KiB \(1114112\)/)
  t.equal(withLimits('  maxValueBytes: 1000\n  maxRespQueryBufferBytes: 70000\n').limits.maxRespQueryBufferBytes, 70_000)
})

t.test('limits have ranges, and the response budgets must hold the largest value', async (t) => {
  const withLimits = (limits: string) => parseRouterConfig(`${minimal}limits:\n${limits}`, 'r.yaml')
  t.throws(() => withLimits('  maxJsonDepth: 0\n'), /r\.yaml:7: limits\.maxJsonDepth: must be >= 1/)
  t.throws(() => withLimits('  idleTimeoutMs: 10\n'), /limits\.idleTimeoutMs: must be >= 100/)
  t.throws(() => withLimits('  maxConnections: 0\n'), /limits\.maxConnections: must be >= 1/)
  t.throws(() => withLimits('  maxInFlightResponseBytes: 4096\n  maxBatchResponseBytes: 2048\n  maxValueBytes: 8192\n'), /r\.yaml:7: limits\.maxInFlightResponseBytes: must be at least limits\.maxValueBytes \(8192\)/)
  t.throws(() => withLimits('  maxBatchResponseBytes: 300000000\n'), /limits\.maxBatchResponseBytes: must be at most limits\.maxInFlightResponseBytes/)
})

t.test('a missing config file is a config error naming it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-config-'))
  t.throws(() => loadRouterConfig(join(dir, 'gone.yaml')), /gone\.yaml: cannot read the config: ENOENT/)
  writeFileSync(join(dir, 'router.yaml'), minimal)
  t.equal(loadRouterConfig(join(dir, 'router.yaml')).defaultPool, 'main')
})

t.test('connection settings: the data port cap is lowered to fit the open-file limit, the admin port keeps its own', async (t) => {
  const limits = parseRouterConfig(minimal, 'r.yaml').limits
  const log = createLogger('config-test', 'silent')
  t.same(connectionSettings(limits, null, log), {
    data: { max: 10_000, idleTimeoutMs: 5000, requestTimeoutMs: 10_000 },
    admin: { max: 256, idleTimeoutMs: 5000, requestTimeoutMs: 10_000 },
  })
  t.equal(connectionSettings(limits, 20_000, log).data.max, 10_000, 'fits 20,000 open files')
  t.equal(connectionSettings(limits, 4096, log).data.max, 4096 - 256 - FILE_RESERVE)
  t.equal(connectionSettings(limits, 4096, log).admin.max, 256)
  t.equal(connectionSettings(limits, 100, log).data.max, 1, 'never below one')
  t.equal(connectionSettings({ ...limits, maxRespConnections: 1000 }, 4096, log, true).data.max, 4096 - 256 - 1000 - FILE_RESERVE, 'the RESP port\'s cap counts when it listens')

  const dir = mkdtempSync(join(tmpdir(), 'shardline-limits-'))
  writeFileSync(join(dir, 'limits'), 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n')
  t.equal(openFileLimit(join(dir, 'limits')), 1024)
  writeFileSync(join(dir, 'unlimited'), 'Max open files            unlimited            unlimited            files\n')
  t.equal(openFileLimit(join(dir, 'unlimited')), null)
  t.equal(openFileLimit(join(dir, 'missing')), null)
  t.type(openFileLimit(), 'number', 'this process has one')
})

t.test('destinations may carry an admin address', async (t) => {
  const config = parseRouterConfig(minimal.replace('primary: 127.0.0.1:7000', 'primary: { address: 127.0.0.1:7000, admin: 127.0.0.1:7100 }'), 'r.yaml')
  t.same(config.pools.main.shards[0].primary.admin, { host: '127.0.0.1', port: 7100 })
})

t.test('${ENV} and ${ENV:-default} are interpolated; an unset variable is an error with its line', async (t) => {
  process.env.SHARDLINE_TEST_HOST = '10.1.2.3'
  const text = `${minimal}listen:\n  data: \${SHARDLINE_TEST_HOST}:80\n  admin: \${SHARDLINE_TEST_UNSET:-127.0.0.1}:9\n`
  const config = parseRouterConfig(text, 'r.yaml')
  t.same(config.listen.data, { host: '10.1.2.3', port: 80 })
  t.same(config.listen.admin, { host: '127.0.0.1', port: 9 })
  t.throws(() => parseRouterConfig(`${minimal}listen:\n  data: \${SHARDLINE_TEST_UNSET}:80\n`, 'r.yaml'), /r\.yaml:7: environment variable SHARDLINE_TEST_UNSET is not set/)
})

t.test('errors name the file, the line and the path', async (t) => {
  const bad = `pools:
  main:
    shards:
      - name: s0
        primary: 127.0.0.1:7000
      - name: s1
        primary: 127.0.0.1:7001
      - name: s2
        primary: not-an-address
hashing:
  pointsPerShard: 0
colour: blue
`
  const message = errorOf(() => parseRouterConfig(bad, 'router.yaml'))
  t.match(message, 'router.yaml:9: pools.main.shards[2].primary: must be host:port')
  t.match(message, 'router.yaml:11: hashing.pointsPerShard: must be >= 1')
  t.match(message, 'colour: is not a known setting')
})

t.test('cross-references are checked: pools named by routes, the default, duplicate names and addresses', async (t) => {
  const twoPools = `pools:
  a:
    shards:
      - name: s0
        primary: 127.0.0.1:7000
      - name: s0
        primary: 127.0.0.1:7000
  b:
    shards:
      - name: x
        primary: 127.0.0.1:7002
routes:
  - prefix: "user:"
    pool: nope
`
  const message = errorOf(() => parseRouterConfig(twoPools, 'r.yaml'))
  t.match(message, 'defaultPool: must name the pool for keys no route matches')
  t.match(message, 'r.yaml:6: pools.a.shards[1].name: duplicate shard name "s0"')
  t.match(message, 'r.yaml:7: pools.a.shards[1].primary: address 127.0.0.1:7000 is already used by a/s0')
  t.match(message, 'r.yaml:14: routes[0].pool: names no pool (pools: a, b)')
})

t.test('YAML syntax errors name the line', async (t) => {
  t.throws(() => parseRouterConfig('pools:\n  main: [\n', 'r.yaml'), /^r\.yaml:\d+: /)
})

t.test('draining is a boolean per shard, and a pool keeps at least one shard that owns keys', async (t) => {
  const pool = (first: string, second: string) => `pools:
  main:
    shards:
      - name: s0
        primary: 127.0.0.1:7000${first}
      - name: s1
        primary: 127.0.0.1:7001${second}
`
  const config = parseRouterConfig(pool('\n        draining: true', ''), 'r.yaml')
  t.same(config.pools.main.shards.map((shard) => shard.draining), [true, false])
  t.throws(() => parseRouterConfig(pool('\n        draining: "yes"', ''), 'r.yaml'), /r\.yaml:6: pools\.main\.shards\[0\]\.draining: must be boolean/)
  const message = errorOf(() => parseRouterConfig(pool('\n        draining: true', '\n        draining: true'), 'r.yaml'))
  t.match(message, /r\.yaml:4: pools\.main\.shards: every shard of pool main is draining: at least one must own its keys/)
})

t.test('migration.windowMs: 0 (off) up to 7 days', async (t) => {
  const withWindow = (windowMs: string) => parseRouterConfig(`${minimal}migration:\n  windowMs: ${windowMs}\n`, 'r.yaml')
  t.equal(withWindow('0').migration.windowMs, 0, '0 turns warm-up off')
  t.equal(withWindow('604800000').migration.windowMs, 604_800_000)
  t.throws(() => withWindow('604800001'), /r\.yaml:7: migration\.windowMs: must be <= 604800000/)
  t.throws(() => withWindow('-1'), /migration\.windowMs: must be >= 0/)
  t.throws(() => withWindow('1.5'), /migration\.windowMs: must be integer/)
  t.throws(() => parseRouterConfig(`${minimal}migration:\n  window: 5\n`, 'r.yaml'), /migration\.window: is not a known setting/)
})

t.test('region: a name and an id (0-15) with its passwords; each pool says what peer regions may write (default none)', async (t) => {
  const withRegion = (region: string, poolMode = '') => `region: ${region}
pools:
  main:${poolMode}
    shards:
      - name: s0
        primary: 127.0.0.1:7000
`
  const plain = parseRouterConfig(minimal, 'r.yaml')
  t.equal(plain.region, null, 'no region: one region, SL.REGION.* refused')
  t.equal(plain.pools.main.region, 'none')
  const west = parseRouterConfig(withRegion('{ name: west, id: 2, passwords: [p1, { env: HOME }] }', '\n    region: replicate'), 'r.yaml')
  t.same(west.region, { name: 'west', id: 2, passwords: ['p1', { env: 'HOME' }] })
  t.equal(west.pools.main.region, 'replicate')
  t.same(parseRouterConfig(withRegion('{ name: east, id: 0 }'), 'r.yaml').region, { name: 'east', id: 0, passwords: [] }, 'passwords default to none')
  t.match(errorOf(() => parseRouterConfig(withRegion('{ name: West_1, id: 2 }'), 'r.yaml')), /^r\.yaml:1: region\.name: must be 1-32 of a-z, 0-9 and -/)
  t.match(errorOf(() => parseRouterConfig(withRegion('{ name: west, id: 16 }'), 'r.yaml')), /^r\.yaml:1: region\.id: must be <= 15/)
  t.match(errorOf(() => parseRouterConfig(withRegion('{ name: west }'), 'r.yaml')), /region: .*id/)
  t.match(errorOf(() => parseRouterConfig(withRegion('{ name: west, id: 1, colour: red }'), 'r.yaml')), /region\.colour: is not a known setting/)
  t.match(errorOf(() => parseRouterConfig(withRegion('{ name: west, id: 1 }', '\n    region: everything'), 'r.yaml')), /^r\.yaml:4: pools\.main\.region: must be equal to one of the allowed values/)
  const noRegion = `pools:
  main:
    region: invalidate
    shards:
      - name: s0
        primary: 127.0.0.1:7000
`
  t.match(errorOf(() => parseRouterConfig(noRegion, 'r.yaml')), /^r\.yaml:3: pools\.main\.region: pool main takes region writes \(invalidate\) but the router has no region/)
})
