// Tenants on the data path, end to end (a router process over real shards): every HTTP data route and
// every RESP data command refuses a missing or bad token (401 / NOAUTH, WRONGPASS), a permission the
// tenant lacks (403 / NOPERM) and a request past its rate limit (429 with Retry-After); keys land in
// the tenant's namespace; failures are counted by reason and logged once per source, not per request.
// And the tenant route in process: the pool a tenant's key goes to, and how /admin/route explains it.
import t from 'tap'
import { createLogger } from '../../common/logger.ts'
import { PrefixRoute } from '../../router/routes/prefix-route.ts'
import type { Op, Route } from '../../router/routes/route.ts'
import { TenantRoute } from '../../router/routes/tenant-route.ts'
import { TenantAccess } from '../../router/tenants.ts'
import { dumpShard } from '../helpers/elastic-pool.ts'
import { waitFor } from '../helpers/processes.ts'
import { metricValue, respClient, send, startTenantRouter } from '../helpers/tenant-router.ts'

const cluster = await startTenantRouter(t, {
  tenants: `  - { name: alice, tokens: [alice-token, alice-token-2], permissions: [read, write], namespace: alice }
  - { name: reader, tokens: [reader-token], permissions: [read], namespace: shared }
  - { name: writer, tokens: [writer-token], permissions: [write], namespace: shared }
  - { name: limited, tokens: [limited-token], permissions: [read, write], namespace: limited, rateLimit: { rate: 0.5, burst: 3 } }
  - { name: limited-resp, tokens: [limited-resp-token], permissions: [read, write], namespace: limited, rateLimit: { rate: 0.5, burst: 3 } }
  - { name: ops, tokens: ["sha256:${'0'.repeat(64)}", ops-token], permissions: [admin] }`,
})
const { router } = cluster

/** Every HTTP data route: what it needs, and a request to it. */
const ROUTES = [
  { name: 'GET /:key', needs: 'read', method: 'GET', path: '/k' },
  { name: 'POST /:key', needs: 'write', method: 'POST', path: '/k', body: { value: 1 } },
  { name: 'DELETE /:key', needs: 'write', method: 'DELETE', path: '/k' },
  { name: 'POST /:key/incr', needs: 'write', method: 'POST', path: '/n/incr', body: { by: 1 } },
  { name: 'GET /:key/counter', needs: 'read', method: 'GET', path: '/n/counter' },
  { name: 'batch of gets', needs: 'read', method: 'POST', path: '/-/batch', body: { ops: [{ op: 'get', key: 'k' }] } },
  { name: 'batch of sets', needs: 'write', method: 'POST', path: '/-/batch', body: { ops: [{ op: 'set', key: 'k', value: 1 }] } },
  { name: 'batch of deletes', needs: 'write', method: 'POST', path: '/-/batch', body: { ops: [{ op: 'delete', key: 'k' }] } },
] as const

t.test('HTTP: 401 with WWW-Authenticate for no token, a bad one, or another scheme, on every route', async (t) => {
  const before = await metricValue(router.adminUrl, 'shardline_router_auth_failures_total{reason="bad_token"}')
  for (const route of [...ROUTES, { name: 'an unknown path', method: 'GET', path: '/a/b/c' }]) {
    const body = 'body' in route ? route.body : undefined
    for (const [what, token] of [['no token', undefined], ['a bad token', 'alice-token-3'], ['an empty token', '']] as const) {
      const answer = await send(router.url, route.method, route.path, token, body)
      t.equal(answer.status, 401, `${route.name}, ${what}`)
      t.equal(answer.headers['www-authenticate'], 'Bearer realm="shardline"')
      t.match(answer.body, { code: 'unauthorized', error: String })
    }
  }
  const basic = await fetch(`${router.url}/k`, { headers: { authorization: 'Basic YWxpY2U6YWxpY2UtdG9rZW4=' } })
  t.equal(basic.status, 401, 'only Bearer tokens are read')
  const counted = await metricValue(router.adminUrl, 'shardline_router_auth_failures_total{reason="bad_token"}') - before
  t.equal(counted, ROUTES.length + 1, 'each bad token counted')
  t.ok(await metricValue(router.adminUrl, 'shardline_router_auth_failures_total{reason="missing_token"}') >= 2 * (ROUTES.length + 1))
})

t.test('HTTP: 403 forbidden on every route for a permission the tenant lacks, and nothing is sent', async (t) => {
  for (const route of ROUTES) {
    const body = 'body' in route ? route.body : undefined
    const lacking = route.needs === 'read' ? ['writer-token'] : ['reader-token']
    for (const token of [...lacking, 'ops-token']) {
      const answer = await send(router.url, route.method, route.path, token, body)
      t.equal(answer.status, 403, `${route.name} with ${token}`)
      t.match(answer.body, { code: 'forbidden', error: /has no (read|write) permission/ })
    }
  }
  const mixed = await send(router.url, 'POST', '/-/batch', 'writer-token', { ops: [{ op: 'set', key: 'mixed', value: 1 }, { op: 'get', key: 'mixed' }] })
  t.equal(mixed.status, 403, 'a batch needs the permission of every op')
  const read = await send(router.url, 'GET', '/mixed', 'reader-token')
  t.equal(read.status, 404, 'the refused batch wrote nothing')
  t.ok(await metricValue(router.adminUrl, 'shardline_router_auth_failures_total{reason="forbidden"}') >= ROUTES.length * 2 + 1)
})

t.test('HTTP: a tenant works in its namespace; tenants sharing one share keys; the shard holds namespaced keys', async (t) => {
  t.same((await send(router.url, 'POST', '/greeting', 'alice-token', { value: 'hi alice' })).body, { stored: true })
  t.same((await send(router.url, 'GET', '/greeting', 'alice-token-2')).body, { value: 'hi alice' }, 'either token of the tenant')
  t.same((await send(router.url, 'POST', '/greeting', 'writer-token', { value: 'hi shared' })).body, { stored: true })
  t.same((await send(router.url, 'GET', '/greeting', 'reader-token')).body, { value: 'hi shared' }, 'reader and writer share the namespace "shared"')
  t.same((await send(router.url, 'GET', '/greeting', 'alice-token')).body, { value: 'hi alice' })
  t.same((await send(router.url, 'POST', '/visits/incr', 'alice-token', { by: 3 })).body, { value: 3 })
  t.same((await send(router.url, 'GET', '/visits/counter', 'alice-token')).body, { value: 3 })
  t.same((await send(router.url, 'POST', '/-/batch', 'alice-token', { ops: [{ op: 'get', key: 'greeting' }, { op: 'set', key: 'b', value: 2 }] })).body, { results: [{ value: 'hi alice' }, { stored: true }] })
  const keys = new Set<string>()
  for (const shard of cluster.shards) for (const key of (await dumpShard(shard)).keys()) keys.add(key)
  for (const key of ['alice:greeting', 'shared:greeting', 'alice:visits', 'alice:b']) t.ok(keys.has(key), `a shard holds ${key}`)
  t.notOk(keys.has('greeting'), 'no key outside a namespace')
  t.ok(await metricValue(router.adminUrl, 'shardline_router_tenant_requests_total{tenant="alice"}') >= 6)
})

t.test('a key\'s namespace counts toward limits.maxKeyBytes', async (t) => {
  const longest = 'k'.repeat(250 - 'alice:'.length)
  t.same((await send(router.url, 'POST', `/${longest}`, 'alice-token', { value: 1 })).body, { stored: true })
  const tooLong = await send(router.url, 'POST', `/${longest}k`, 'alice-token', { value: 1 })
  t.equal(tooLong.status, 400)
  t.match(tooLong.body, { code: 'key_too_long', error: 'key is 245 bytes and its namespace "alice:" 6 more; the limit is 250' })
  const redis = respClient(t, cluster.respPort, { token: 'alice-token' })
  await t.rejects(redis.set(`${longest}k`, 'v'), { message: /^ERR key_too_long/ })
})

t.test('HTTP: 429 rate_limited with Retry-After past the burst; a batch costs its op count', async (t) => {
  // burst 3 at 0.5/s: a batch of 3 empties the bucket; the next request waits ~2 s for a token.
  t.equal((await send(router.url, 'POST', '/-/batch', 'limited-token', { ops: [{ op: 'get', key: 'a' }, { op: 'get', key: 'b' }, { op: 'get', key: 'c' }] })).status, 200)
  for (const route of ROUTES) {
    const answer = await send(router.url, route.method, route.path, 'limited-token', 'body' in route ? route.body : undefined)
    t.equal(answer.status, 429, route.name)
    t.match(answer.body, { code: 'rate_limited', error: /tenant limited is over its rate limit/ })
    const retryAfter = Number(answer.headers['retry-after'])
    t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 2, `Retry-After ${answer.headers['retry-after']}`)
  }
  t.ok(await metricValue(router.adminUrl, 'shardline_router_rate_limited_total{tenant="limited",mode="enforce"}') >= ROUTES.length)
  t.equal((await send(router.url, 'GET', '/k', 'alice-token')).status, 404, 'other tenants are not limited by it')
})

t.test('RESP: NOAUTH before AUTH (PING answers), WRONGPASS for a bad token, then commands run in the namespace', async (t) => {
  const redis = respClient(t, cluster.respPort)
  await redis.connect()
  t.equal(await redis.ping(), 'PONG', 'PING before AUTH, for liveness probes')
  for (const command of [['GET', 'k'], ['SET', 'k', 'v'], ['DEL', 'k'], ['EXISTS', 'k'], ['MGET', 'k'], ['MSET', 'k', 'v'], ['INCR', 'n'], ['DECR', 'n'], ['INCRBY', 'n', '2'], ['DECRBY', 'n', '2'],
    ['EXPIRE', 'k', '5'], ['PEXPIRE', 'k', '5'], ['TTL', 'k'], ['PTTL', 'k'], ['ECHO', 'x'], ['INFO'], ['SELECT', '0'], ['CONFIG', 'GET', 'save'], ['CLIENT', 'SETNAME', 'x'], ['COMMAND'], ['GET']]) {
    await t.rejects(redis.call(command[0], ...command.slice(1)), { message: 'NOAUTH Authentication required.' }, command.join(' '))
  }
  await t.rejects(redis.call('HELLO', '2'), { message: /^NOAUTH HELLO must be called with the client already authenticated/ })
  await t.rejects(redis.call('AUTH', 'alice-token-3'), { message: 'WRONGPASS invalid username-password pair or user is disabled.' })
  await t.rejects(redis.call('AUTH', 'reader', 'alice-token'), { message: /^WRONGPASS/ }, 'the token must be the named tenant\'s')
  await t.rejects(redis.call('AUTH', 'a', 'b', 'c'), { message: /syntax error/ })
  await t.rejects(redis.get('k'), { message: /^NOAUTH/ }, 'a failed AUTH leaves the connection unauthenticated')
  t.equal(await redis.call('AUTH', 'alice', 'alice-token'), 'OK')
  t.equal(await redis.get('greeting'), 'hi alice', 'the HTTP front and the RESP front share the tenant\'s keys')
  t.equal(await redis.set('resp-key', 'v'), 'OK')
  t.equal(await redis.incrby('resp-counter', 4), 4)
  t.same(await redis.mget('greeting', 'resp-key'), ['hi alice', 'v'])
  t.same((await send(router.url, 'GET', '/resp-key', 'alice-token')).body, { value: 'v' })
  t.equal((await send(router.url, 'GET', '/resp-key', 'reader-token')).status, 404)
  await t.rejects(redis.call('AUTH', 'nobody-token'), { message: /^WRONGPASS/ })
  t.equal(await redis.get('resp-key'), 'v', 'a failed AUTH keeps the tenant the connection had')
  t.equal(await redis.call('AUTH', 'reader-token'), 'OK', 'AUTH <token> names the tenant holding it')
  t.equal(await redis.get('greeting'), 'hi shared')
})

t.test('RESP: HELLO with AUTH, and clients that authenticate on connect', async (t) => {
  const hello = respClient(t, cluster.respPort)
  await hello.connect()
  await t.rejects(hello.call('HELLO', '3', 'AUTH', 'alice', 'nope'), { message: /^WRONGPASS/ })
  await t.rejects(hello.call('HELLO', '3', 'AUTH', 'alice', 'alice-token'), { message: /^NOPROTO/ }, 'RESP2 only, but the credentials count')
  t.equal(await hello.get('greeting'), 'hi alice')
  t.match(await hello.call('HELLO', '2', 'AUTH', 'default', 'reader-token'), ['server', 'redis'], '"default" is whichever tenant holds the token')
  t.equal(await hello.get('greeting'), 'hi shared')
  const client = respClient(t, cluster.respPort, { tenant: 'alice', token: 'alice-token' })
  t.equal(await client.get('greeting'), 'hi alice', 'ioredis with username and password')
  const passwordOnly = respClient(t, cluster.respPort, { token: 'alice-token-2' })
  t.equal(await passwordOnly.get('greeting'), 'hi alice', 'ioredis with a password only (redis-cli -a)')
})

t.test('RESP: NOPERM for a permission the tenant lacks, on every data command', async (t) => {
  const reader = respClient(t, cluster.respPort, { token: 'reader-token' })
  const writer = respClient(t, cluster.respPort, { token: 'writer-token' })
  const ops = respClient(t, cluster.respPort, { token: 'ops-token' })
  const writes = [['SET', 'k', 'v'], ['DEL', 'k'], ['MSET', 'k', 'v'], ['INCR', 'n'], ['DECR', 'n'], ['INCRBY', 'n', '2'], ['DECRBY', 'n', '2'], ['EXPIRE', 'k', '5'], ['PEXPIRE', 'k', '5']]
  const reads = [['GET', 'k'], ['EXISTS', 'k'], ['MGET', 'k'], ['TTL', 'k'], ['PTTL', 'k']]
  for (const [client, refused] of [[reader, writes], [writer, reads], [ops, [...reads, ...writes]]] as const) {
    for (const command of refused) {
      await t.rejects(client.call(command[0], ...command.slice(1)), { message: new RegExp(`^NOPERM this tenant may not run the '${command[0].toLowerCase()}' command`) }, command.join(' '))
    }
  }
  t.equal(await writer.set('from-writer', 'w'), 'OK')
  t.equal(await reader.get('from-writer'), 'w')
  t.equal(await ops.ping(), 'PONG', 'connection commands need no data permission')
})

t.test('RESP: rate_limited past the burst; a multi-key command costs its key count', async (t) => {
  const limited = respClient(t, cluster.respPort, { token: 'limited-resp-token' })
  t.same(await limited.mget('a', 'b', 'c'), [null, null, null])
  await t.rejects(limited.get('a'), { message: /^ERR rate_limited: tenant limited-resp is over its rate limit/ })
  await t.rejects(limited.mset('a', '1'), { message: /^ERR rate_limited/ })
  t.equal(await limited.ping(), 'PONG', 'connection commands are not limited')
})

t.test('auth failures are logged at most once a second per source, never with the token', async (t) => {
  const logged = () => router.output().split('\n').slice(0, -1).filter((line) => line.includes('refused a request for its credentials')).map((line) => JSON.parse(line))
  const before = logged().length
  const started = Date.now()
  await Promise.all(Array.from({ length: 200 }, () => send(router.url, 'GET', '/k', 'flood-token-secret')))
  // The failures after the first line of a second are summed up in the next one.
  const summary = await waitFor(async () => {
    await send(router.url, 'GET', '/k', 'flood-token-secret')
    return logged().slice(before).find((line) => line.unlogged >= 150)
  }, 5000, () => 'a line counting the unlogged failures')
  const elapsedSeconds = (Date.now() - started) / 1000
  const added = logged().length - before
  t.ok(added <= Math.ceil(elapsedSeconds) + 1, `${added} lines for over 200 failures in ${elapsedSeconds.toFixed(2)} s`)
  t.match(summary, { reason: 'bad_token', remoteAddress: String, port: 'data' })
  t.notOk(router.output().includes('flood-token-secret'), 'the token is never logged')
  for (const secret of ['alice-token', 'reader-token', 'ops-token']) t.notOk(router.output().includes(secret), `${secret} never logged`)
})

t.test('the tenant route: the prefix routes match the tenant\'s own key, a pinned tenant\'s pool is its own; explain says so', async (t) => {
  const seen: Array<[string, string]> = []
  const pool = (name: string): Route => ({
    route: async (op) => {
      seen.push([name, op.key])
      return { kind: 'get', found: false }
    },
    explain: (key) => [{ route: `pool ${name}`, decision: 'shard', why: key }],
    describe: () => name,
  })
  const pools = new Map([['main', pool('main')], ['sessions', pool('sessions')], ['pinned', pool('pinned')]])
  const prefix = new PrefixRoute([{ prefix: 'session:', route: pools.get('sessions')!, name: 'sessions' }], { route: pools.get('main')!, name: 'main' })
  const access = new TenantAccess([
    { name: 'alice', tokens: ['a'], permissions: ['read'], namespace: 'alice', pool: null, rateLimit: null },
    { name: 'pinned', tokens: ['p'], permissions: ['read'], namespace: 'p', pool: 'pinned', rateLimit: null },
  ], createLogger('tenant-route-test', 'silent'))
  t.teardown(() => access.close())
  const route = new TenantRoute(prefix, pools, access.tenants, 250)
  const [alice, pinned] = access.tenants
  const get = (key: string, tenant?: typeof alice): Op => ({ kind: 'get', key, tenant })
  await route.route(get('session:1', alice))
  await route.route(get('alice:session:1'))
  await route.route(get('session:1', pinned))
  await route.route(get('x', alice))
  t.same(seen, [['sessions', 'alice:session:1'], ['main', 'alice:session:1'], ['pinned', 'p:session:1'], ['main', 'alice:x']])
  t.throws(() => route.route({ kind: 'set', key: 'k', value: Buffer.from('v'), flags: 0, version: 1, tenant: alice }), { statusCode: 403, code: 'forbidden' }, 'the permission is checked here too')
  t.same(route.explain('session:1', alice), [
    { route: 'tenant', decision: 'alice', why: 'tenant alice\'s keys are sent under "alice:"' },
    { route: 'prefix', decision: 'sessions', why: 'longest matching prefix "session:"' },
    { route: 'pool sessions', decision: 'shard', why: 'alice:session:1' },
  ])
  t.same(route.explain('session:1', pinned).slice(1), [
    { route: 'prefix', decision: 'pinned', why: 'tenant pinned is pinned to pool pinned' },
    { route: 'pool pinned', decision: 'shard', why: 'p:session:1' },
  ])
  t.same(route.explain('session:1'), [{ route: 'prefix', decision: 'sessions', why: 'longest matching prefix "session:"' }, { route: 'pool sessions', decision: 'shard', why: 'session:1' }], 'without a tenant, as before')
})
