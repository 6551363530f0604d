// The router's side of multi-region, with real shard and router processes: SL.REGION.APPLY lands on the
// shard this region's ring gives the key, apply-if-newer; HELLO's incarnation; TRYAGAIN, -ERR and auth.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import net from 'node:net'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import { RespRequestParser } from '../../common/resp-request-parser.ts'
import { HashRing } from '../../common/ring.ts'
import { packEntry } from '../../shard/entry.ts'
import { subCounterKey } from '../../router/routes/hot-key-route.ts'
import { freePort, startRouterProcess, startShardProcess, waitFor, type ShardProcess, type Teardown } from '../helpers/processes.ts'
import { silentServer } from '../helpers/client-router.ts'
import { metricValue } from '../helpers/tenant-router.ts'

const dir = mkdtempSync(join(tmpdir(), 'shardline-region-receiver-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/** A RESP client that connects on first use and reports every error as a value, not a reconnect. */
function client(t: Teardown, port: number): Redis {
  const redis = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, enableReadyCheck: false, lazyConnect: true, retryStrategy: () => null })
  t.teardown(() => redis.disconnect())
  return redis
}

/** A shard that is alive (PONG) and loading: every other command is answered -LOADING. */
async function loadingShard(t: Teardown): Promise<number> {
  const server = net.createServer((socket) => {
    const parser = new RespRequestParser()
    socket.on('error', () => socket.destroy())
    socket.on('data', (chunk) => parser.push(chunk, (args) => {
      socket.write(args[0].toString('latin1').toUpperCase() === 'PING' ? '+PONG\r\n' : '-LOADING the shard is loading its data\r\n')
      return true
    }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.close()
    server.unref()
  })
  return (server.address() as net.AddressInfo).port
}

/** The reply, or the error reply's message. */
async function reply(redis: Redis, ...args: Array<string | Buffer | number>): Promise<unknown> {
  try {
    return await redis.call(String(args[0]), ...args.slice(1))
  } catch (error) {
    return `-${(error as Error).message}`
  }
}

async function startRouter(t: Teardown, name: string, yaml: string): Promise<{ resp: number; adminUrl: string }> {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, `listen: { data: 127.0.0.1:0, admin: 127.0.0.1:0, resp: 127.0.0.1:0 }
health: { heartbeatMs: 100, failuresBeforeKnockout: 1, probeInitialMs: 50, probeMaxMs: 200 }
connections: { timeoutMs: 1000, connectTimeoutMs: 300 }
limits: { maxKeyBytes: 64, maxValueBytes: 4096, idleTimeoutMs: 120000 }
${yaml}`)
  const router = await startRouterProcess(t, file)
  return { resp: Number(/resp [\d.]+:(\d+)/.exec(router.output())![1]), adminUrl: router.adminUrl }
}

const shards: ShardProcess[] = await Promise.all(['s0', 's1', 's2'].map((name) => startShardProcess(t, ['--name', name])))
const deadPort = await freePort()
const hungPort = await silentServer(t)
const loadingPort = await loadingShard(t)
const mainPool = (mode: string) => `  main:
    region: ${mode}
    shards:
      - { name: s0, primary: 127.0.0.1:${shards[0].port} }
      - { name: s1, primary: 127.0.0.1:${shards[1].port} }`
const pools = `defaultPool: main
pools:
${mainPool('replicate')}
  inv:
    region: invalidate
    shards:
      - { name: i0, primary: 127.0.0.1:${shards[2].port} }
  off:
    shards:
      - { name: o0, primary: 127.0.0.1:${deadPort} }
  hung:
    region: replicate
    shards:
      - { name: h0, primary: 127.0.0.1:${hungPort} }
  loading:
    region: replicate
    shards:
      - { name: l0, primary: 127.0.0.1:${loadingPort} }
`
const tenants = `tenants:
  - { name: alice, tokens: [alice-token], permissions: [read, write], namespace: a }
  - { name: ops, tokens: [ops-token], permissions: [admin] }
`
const [open, guarded, noPasswords, noRegion] = await Promise.all([
  startRouter(t, 'open', `region: { name: west, id: 2 }\n${pools}`),
  startRouter(t, 'guarded', `region: { name: west, id: 2, passwords: [region-secret, second-secret] }\n${tenants}pools:\n${mainPool('replicate')}\n`),
  startRouter(t, 'no-passwords', `region: { name: west, id: 2 }\n${tenants}pools:\n${mainPool('replicate')}\n`),
  startRouter(t, 'no-region', `pools:\n${mainPool('none')}\n`),
])
const ring = new HashRing(['s0', 's1'], 8000)
const direct = shards.map((shard) => client(t, shard.port))
const peer = client(t, open.resp)
/** Keys that the ring gives to s0 and to s1. */
const keysOf = (shard: string, count: number, prefix: string) => Array.from({ length: 200 }, (_, i) => `${prefix}${i}`).filter((key) => ring.lookup(key) === shard).slice(0, count)
const getv = async (shard: number, key: string) => (await direct[shard].call('SL.GETV', key)) as [string, string, string, string] | null

// Every shard answers SL.REGION.ID, and the router reaches them.
const idOf = async (shard: number) => String(await direct[shard].call('SL.REGION.ID'))
await waitFor(async () => String(await reply(peer, 'SL.REGION.HELLO', 'east', '1', 'main')).includes(`s1=${await idOf(1)}`), 15_000, () => 'the router reaches both shards')

t.test('SL.SETV, SL.DELV, SL.PUTV and SL.PUTE land on the shard the ring gives the key, and nowhere else', async (t) => {
  for (const owner of ['s0', 's1']) {
    const index = owner === 's0' ? 0 : 1
    const other = 1 - index
    for (const key of keysOf(owner, 4, `set-${owner}-`)) {
      t.equal(await reply(peer, 'SL.REGION.APPLY', 'east', 'main', 'SL.SETV', key, `value of ${key}`, '1000', 'FLAGS', '7'), 1, `${key} stored`)
      t.match(await getv(index, key), [`value of ${key}`, '1000', '7'], `${key} is on ${owner}`)
      t.equal(await getv(other, key), null, `${key} is not on the other shard`)
      t.equal(await reply(peer, 'SL.REGION.APPLY', 'east', 'main', 'SL.DELV', key, '1001'), 1, `${key} deleted`)
      t.equal(await getv(index, key), null)
    }
    const [putKey] = keysOf(owner, 1, `put-${owner}-`)
    const entry = Buffer.from(packEntry('packed', { version: 2000, expiresAt: 0, flags: 3 }), 'latin1')
    t.equal(await reply(peer, 'SL.REGION.APPLY', 'east', 'main', 'SL.PUTV', putKey, entry), 1)
    t.match(await getv(index, putKey), ['packed', '2000', '3'], 'SL.PUTV: the entry is on its owner')
    t.equal(await getv(other, putKey), null)
  }
  // A counter's entry as a shard of the other region holds it: made on s2 (outside pool main), merged by its owner here.
  const [counter] = keysOf('s1', 1, 'counter-')
  await direct[2].call('INCRBY', counter, '5')
  const [, flat] = (await direct[2].callBuffer('SL.SCAN', '0', 'COUNT', '1000')) as [Buffer, Buffer[]]
  const counterEntry = flat[flat.findIndex((item) => item.toString('latin1') === counter) + 1]
  t.equal(await reply(peer, 'SL.REGION.APPLY', 'east', 'main', 'SL.PUTE', counter, counterEntry), 1)
  t.equal(String(await direct[1].call('GET', counter)), '5', 'SL.PUTE: the counter is on its owner')
  await direct[1].call('INCRBY', counter, '2')
  await reply(peer, 'SL.REGION.APPLY', 'east', 'main', 'SL.PUTE', counter, counterEntry)
  t.equal(String(await direct[1].call('GET', counter)), '7', 'sent again, the other region\'s increments merge and this one\'s stay')
  t.equal(await direct[0].call('EXISTS', counter), 0)
  // A hot counter's sub-counter goes where this region's hot-key route sums it, not where its name hashes.
  const base = 'hot-counter'
  const sub = subCounterKey(base, 1)
  const home = ring.lookupDistinct(base, 8)[1 % ring.lookupDistinct(base, 8).length]
  t.equal(await reply(peer, 'SL.REGION.APPLY', 'east', 'main', 'SL.SETV', sub, '3', '1000'), 1)
  t.ok(await getv(home === 's0' ? 0 : 1, sub), `the sub-counter is on ${home}, its home by the base key`)
})

t.test('apply-if-newer: an older version is answered :0 and changes nothing, a tombstone holds', async (t) => {
  const [key] = keysOf('s0', 1, 'newer-')
  const apply = (...args: string[]) => reply(peer, 'SL.REGION.APPLY', 'east', 'main', ...args)
  t.equal(await apply('SL.SETV', key, 'v2', '2000'), 1)
  t.equal(await apply('SL.SETV', key, 'v1', '1000'), 0, 'older: not stored')
  t.match(await getv(0, key), ['v2', '2000'])
  t.equal(await apply('SL.DELV', key, '1500'), 0, 'an older delete leaves the newer value')
  t.match(await getv(0, key), ['v2'])
  t.equal(await apply('SL.DELV', key, '3000'), 1)
  t.equal(await apply('SL.SETV', key, 'v2.5', '2500'), 0, 'a write older than the tombstone does not bring the key back')
  t.equal(await getv(0, key), null)
  // Pipelined: every reply in order.
  const pipeline = peer.pipeline()
  for (let i = 0; i < 50; i++) pipeline.call('SL.REGION.APPLY', 'east', 'main', 'SL.SETV', `pipelined-${i}`, `v${i}`, String(5000 + i))
  const results = (await pipeline.exec())!
  t.same(results.map(([error, value]) => error ?? value), Array(50).fill(1), 'fifty pipelined writes, fifty :1 in order')
})

t.test('HELLO answers the region and the pool\'s incarnation; a stopped shard is ?, a restarted one has a new id', async (t) => {
  const ids = [await idOf(0), await idOf(1)]
  t.same(await reply(peer, 'SL.REGION.HELLO', 'east', '1', 'main'), ['west', 2, `s0=${ids[0]},s1=${ids[1]}`])
  t.same(await reply(peer, 'SL.REGION.HELLO', 'east', '1', 'off'), '-ERR pool off takes no region writes (pools.off.region is none)')
  const port = shards[1].port
  await shards[1].stop('SIGKILL')
  await waitFor(async () => String(await reply(peer, 'SL.REGION.HELLO', 'east', '1', 'main')).endsWith('s1=?'), 10_000, () => 's1 is ?')
  t.same(await reply(peer, 'SL.REGION.HELLO', 'east', '1', 'main'), ['west', 2, `s0=${ids[0]},s1=?`], 'a shard that does not answer is ?')
  const [down] = keysOf('s1', 1, 'down-')
  const [up] = keysOf('s0', 1, 'up-')
  t.match(await reply(peer, 'SL.REGION.APPLY', 'east', 'main', 'SL.SETV', down, 'v', '1000'), /^-TRYAGAIN /, 'the owner is down: TRYAGAIN (send it again later)')
  t.equal(await reply(peer, 'SL.REGION.APPLY', 'east', 'main', 'SL.SETV', up, 'v', '1000'), 1, 'the other shard\'s keys still apply')
  const restarted = await startShardProcess(t, ['--name', 's1', '--port', String(port)])
  direct[1] = client(t, restarted.port)
  const newId = await idOf(1)
  t.not(newId, ids[1], 'a restarted shard has a new writer id')
  const hello = await waitFor(async () => {
    const answer = await reply(peer, 'SL.REGION.HELLO', 'east', '1', 'main')
    return String(answer).endsWith(`s1=${newId}`) ? answer : null
  }, 30_000, () => 'the router sees the restarted shard')
  t.same(hello, ['west', 2, `s0=${ids[0]},s1=${newId}`])
  t.equal(await reply(peer, 'SL.REGION.APPLY', 'east', 'main', 'SL.SETV', down, 'v', '1000'), 1, 'and its keys apply again')
  t.match(await reply(peer, 'SL.REGION.APPLY', 'east', 'hung', 'SL.SETV', 'k', 'v', '1000'), /^-TRYAGAIN /, 'a shard that does not answer in time: TRYAGAIN')
  t.same(await reply(peer, 'SL.REGION.HELLO', 'east', '1', 'hung'), ['west', 2, 'h0=?'])
  t.match(await reply(peer, 'SL.REGION.APPLY', 'east', 'loading', 'SL.SETV', 'k', 'v', '1000'), /^-TRYAGAIN /, 'a shard answering LOADING: TRYAGAIN')
})

t.test('what is refused, with -ERR: unknown pool, mode none, invalidate takes deletes only, own region, arity, numbers, sizes', async (t) => {
  const apply = (...args: Array<string | Buffer>) => reply(peer, 'SL.REGION.APPLY', ...args)
  const tombstone = Buffer.from(packEntry('', { version: 100, expiresAt: 0, flags: 0, tombstone: true }), 'latin1')
  const live = Buffer.from(packEntry('v', { version: 100, expiresAt: 0, flags: 0 }), 'latin1')
  t.match(await apply('east', 'nope', 'SL.SETV', 'k', 'v', '1'), /^-ERR unknown pool "nope"/)
  t.match(await apply('east', 'off', 'SL.SETV', 'k', 'v', '1'), /^-ERR pool off takes no region writes/)
  t.match(await apply('east', 'inv', 'SL.SETV', 'k', 'v', '1'), /^-ERR pool inv takes only deletes from other regions \(region: invalidate\)/)
  t.match(await apply('east', 'inv', 'SL.PUTV', 'k', live), /^-ERR pool inv takes only deletes/, 'invalidate: a live entry is refused')
  t.match(await apply('east', 'inv', 'SL.PUTE', 'k', live), /^-ERR pool inv takes only deletes/)
  t.equal(await apply('east', 'inv', 'SL.DELV', 'inv-key', '100'), 0, 'invalidate: a delete applies')
  t.equal(await apply('east', 'inv', 'SL.PUTV', 'inv-key2', tombstone), 1, 'invalidate: a scanned tombstone applies')
  t.match(await apply('west', 'main', 'SL.SETV', 'k', 'v', '1'), /^-ERR origin region west is this region/)
  t.match(await reply(peer, 'SL.REGION.HELLO', 'west', '1', 'main'), /^-ERR origin region west is this region/)
  t.match(await reply(peer, 'SL.REGION.HELLO', 'east', '2', 'main'), /^-ERR region id 2 is this region's own/)
  t.match(await reply(peer, 'SL.REGION.HELLO', 'east', '16', 'main'), /^-ERR invalid region id/)
  t.match(await reply(peer, 'SL.REGION.HELLO', 'east', '1'), /^-ERR wrong number of arguments for 'sl.region.hello'/)
  t.match(await apply('East!', 'main', 'SL.SETV', 'k', 'v', '1'), /^-ERR invalid origin region/)
  t.match(await apply('east', 'main', 'SET', 'k', 'v'), /^-ERR unknown region op/)
  t.match(await apply('east', 'main', 'SL.DELV', 'k'), /^-ERR wrong number of arguments for 'sl.region.apply'/)
  t.match(await apply('east', 'main', 'SL.DELV', 'k', '1', 'extra'), /^-ERR wrong number of arguments for SL.DELV/)
  t.match(await apply('east', 'main', 'SL.SETV', 'k', 'v'), /^-ERR wrong number of arguments for SL.SETV/)
  t.match(await apply('east', 'main', 'SL.SETV', 'k', 'v', '1', 'PX', '1', 'FLAGS', '1', 'X'), /^-ERR wrong number of arguments for SL.SETV/)
  for (const version of ['0', '-5', 'abc', '99999999999999999999', '9007199254740993', '1e9']) {
    t.match(await apply('east', 'main', 'SL.SETV', 'k', 'v', version), /^-ERR invalid version/, `version ${version}`)
    t.match(await apply('east', 'main', 'SL.DELV', 'k', version), /^-ERR invalid version/)
  }
  t.match(await apply('east', 'main', 'SL.SETV', 'k', 'v', '1', 'PX', '99999999999999999999999'), /^-ERR/, 'the shard checks the options: its error is relayed')
  t.match(await apply('east', 'main', 'SL.SETV', 'k', Buffer.alloc(5000, 'x'), '1'), /^-ERR value too large: 5000 bytes, the limit is 4096/)
  t.match(await apply('east', 'main', 'SL.PUTV', 'k', Buffer.alloc(5000 + 18)), /^-ERR value too large/)
  t.match(await apply('east', 'main', 'SL.PUTV', 'k', Buffer.from('short')), /^-ERR malformed entry/)
  t.match(await apply('east', 'main', 'SL.PUTV', 'k', Buffer.alloc(40, 0xff)), /^-ERR malformed entry/, 'the shard refuses a broken entry: relayed')
  t.match(await apply('east', 'main', 'SL.SETV', 'k'.repeat(65), 'v', '1'), /^-ERR invalid key: 65 bytes/)
  t.match(await apply('east', 'main', 'SL.SETV', '', 'v', '1'), /^-ERR invalid key: empty/)
  t.equal(await reply(peer, 'PING'), 'PONG', 'the connection is still there')
  t.match(await reply(client(t, noRegion.resp), 'SL.REGION.HELLO', 'east', '1', 'main'), /^-ERR this router has no region/)
  t.match(await reply(client(t, noRegion.resp), 'SL.REGION.APPLY', 'east', 'main', 'SL.DELV', 'k', '1'), /^-ERR this router has no region/)
})

t.test('AUTH region <password>: peers run SL.REGION.* only, tenants never; without passwords tenants\' routers refuse them', async (t) => {
  const [key] = keysOf('s0', 1, 'auth-')
  const anonymous = client(t, guarded.resp)
  t.match(await reply(anonymous, 'SL.REGION.HELLO', 'east', '1', 'main'), /^-NOAUTH/, 'no AUTH: NOAUTH')
  t.match(await reply(anonymous, 'AUTH', 'region', 'wrong'), /^-WRONGPASS/)
  t.match(await reply(anonymous, 'SL.REGION.APPLY', 'east', 'main', 'SL.SETV', key, 'v', '1'), /^-NOAUTH/, 'a wrong password admits nothing')
  const region = client(t, guarded.resp)
  t.equal(await reply(region, 'AUTH', 'region', 'second-secret'), 'OK', 'any of the region passwords')
  t.match(await reply(region, 'SL.REGION.HELLO', 'east', '1', 'main'), ['west', 2])
  t.equal(await reply(region, 'SL.REGION.APPLY', 'east', 'main', 'SL.SETV', key, 'from east', '7000'), 1)
  t.match(await getv(0, key), ['from east', '7000'])
  t.equal(await reply(region, 'PING'), 'PONG')
  t.match(await reply(region, 'HELLO', '2'), ['server', 'redis'], 'HELLO (the RESP one) answers a peer')
  t.match(await reply(region, 'GET', key), /^-NOPERM a peer region's connection may run only SL\.REGION\.\*/, 'a peer runs no data command')
  t.match(await reply(region, 'SET', key, 'x'), /^-NOPERM/)
  const viaHello = client(t, guarded.resp)
  t.match(await reply(viaHello, 'HELLO', '2', 'AUTH', 'region', 'region-secret'), ['server', 'redis'], 'HELLO 2 AUTH region <password> authenticates too')
  t.equal(await reply(viaHello, 'SL.REGION.APPLY', 'east', 'main', 'SL.DELV', key, '7001'), 1)
  const alice = client(t, guarded.resp)
  t.equal(await reply(alice, 'AUTH', 'alice', 'alice-token'), 'OK')
  t.match(await reply(alice, 'SL.REGION.APPLY', 'east', 'main', 'SL.SETV', key, 'v', '9000'), /^-NOPERM tenants may not run 'sl.region.apply'/)
  t.match(await reply(alice, 'SL.REGION.HELLO', 'east', '1', 'main'), /^-NOPERM/)
  t.equal(await reply(alice, 'SET', 'mine', 'ok'), 'OK', 'the tenant runs its own commands')
  t.equal(await getv(0, key), null, 'nothing the tenant sent was applied')
  const aliceThere = client(t, noPasswords.resp)
  t.equal(await reply(aliceThere, 'AUTH', 'alice', 'alice-token'), 'OK')
  t.match(await reply(aliceThere, 'SL.REGION.HELLO', 'east', '1', 'main'), /^-NOPERM/)
  t.match(await reply(client(t, noPasswords.resp), 'SL.REGION.HELLO', 'east', '1', 'main'), /^-NOPERM this router takes 'sl.region.hello' only from peer regions that AUTH region <password>, and it has no region.passwords/)
  t.match(await reply(client(t, noPasswords.resp), 'AUTH', 'region', 'anything'), /^-WRONGPASS/, 'without region passwords, region is just a user name nobody holds')
  t.equal(await metricValue(guarded.adminUrl, 'shardline_router_region_errors_total{origin="unknown",reason="unauthorized"}'), 3, 'a wrong password and two commands before AUTH: unauthorized, from an origin not known then')
  t.equal(await metricValue(guarded.adminUrl, 'shardline_router_region_errors_total{origin="east",reason="unauthorized"}'), 2, 'the tenant\'s two tries, named by the origin they claim once a peer of that name came in')
})

t.test('router metrics count what was applied and what was not, by origin', async (t) => {
  t.equal(await metricValue(open.adminUrl, 'shardline_router_region_applied_total{origin="east",pool="main"}'), 78, 'every op the owning shard answered without an error (:0 included)')
  t.equal(await metricValue(open.adminUrl, 'shardline_router_region_applied_total{origin="east",pool="inv"}'), 2)
  t.ok(await metricValue(open.adminUrl, 'shardline_router_region_errors_total{origin="east",reason="retry"}') >= 1, 'the TRYAGAIN counted as retry')
  t.ok(await metricValue(open.adminUrl, 'shardline_router_region_errors_total{origin="east",reason="refused"}') >= 20, 'the refusals counted')
  const before = await metricValue(open.adminUrl, 'shardline_router_region_applied_total{origin="north",pool="main"}')
  await reply(peer, 'SL.REGION.APPLY', 'north', 'main', 'SL.DELV', 'from-north', '1')
  t.equal(await metricValue(open.adminUrl, 'shardline_router_region_applied_total{origin="north",pool="main"}'), before + 1, 'each origin its own series')
  const config = await (await fetch(`${open.adminUrl}/admin/config`)).json() as { region: unknown }
  t.same(config.region, { name: 'west', id: 2, passwords: 0, pools: { main: 'replicate', inv: 'invalidate', off: 'none', hung: 'replicate', loading: 'replicate' } }, '/admin/config shows the region')
  const guardedConfig = await (await fetch(`${guarded.adminUrl}/admin/config`, { headers: { authorization: 'Bearer ops-token' } })).text()
  t.match(guardedConfig, /"region":\{"name":"west","id":2,"passwords":2/)
  t.notMatch(guardedConfig, /secret/, 'never its passwords')
})
