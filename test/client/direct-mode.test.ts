// Direct mode end to end: the client's own route tree over real shard processes, beside a router on
// the same config: every Transport call, the router's errors, abort, following the router's config
// as it changes, a config file as the topology, and a primary killed (the replica takes its keys).
import t from 'tap'
import { createClient } from '../../client/client.ts'
import { DirectTransport } from '../../client/direct-transport.ts'
import { startDirectCluster, pathSegment } from '../helpers/direct-cluster.ts'
import { waitFor } from '../helpers/processes.ts'

const REFRESH_MS = 200
const cluster = await startDirectCluster(t)
const direct = new DirectTransport({ topology: { adminUrl: cluster.router.adminUrl, refreshMs: REFRESH_MS } })
t.teardown(() => direct.close())
const signal = () => AbortSignal.timeout(5000)
const api = async (path: string, init: RequestInit = {}) => {
  const response = await fetch(`${cluster.router.url}${path}`, init)
  return { status: response.status, body: await response.json() }
}
/** The decision of one step of where the client sends a key ('prefix', 'pool …', 'failover'). */
const decision = async (key: string, route: string) => (await direct.explain(key)).steps.find((step) => step.route.startsWith(route))?.decision
const rejection = (promise: Promise<unknown>) => promise.then(() => null, (error: unknown) => error)

t.test('every call: values as the value rule has them, misses, deletes, counters past 2^53, TTLs', async (t) => {
  const bytes = Buffer.from([0xff, 0x00, 0xc3])
  t.same(await direct.set([['k1', 'text é'], ['k2', { a: [1, null, 'x'] }], ['session:k3', bytes], ['k4', 42]], undefined, signal()), [true, true, true, true])
  t.same(await direct.get(['k1', 'k2', 'session:k3', 'k4', 'missing', 'k1'], 'value', signal()), ['text é', { a: [1, null, 'x'] }, bytes, 42, null, 'text é'])
  t.same(await direct.get(['k2', 'k1'], 'buffer', signal()), [Buffer.from('{"a":[1,null,"x"]}'), Buffer.from('text é')])
  t.same(await api('/k2'), { status: 200, body: { value: { a: [1, null, 'x'] } } }, 'the router reads what direct mode wrote')

  t.equal(await direct.del('k1', signal()), true)
  t.equal(await direct.del('k1', signal()), false)
  t.same(await direct.get(['k1'], 'value', signal()), [null])

  t.equal(await direct.incr('session:c', 5n, signal()), 5n)
  t.equal(await direct.incr('session:c', -7n, signal()), -2n)
  t.equal(await direct.counter('session:c', signal()), -2n)
  t.equal(await direct.counter('never-counted', signal()), 0n)
  t.same(await api('/session%3Ac/counter'), { status: 200, body: { value: -2 } })
  t.equal(await direct.incr('big', 2n ** 62n, signal()), 2n ** 62n, 'a whole signed 64-bit increment')

  t.same(await direct.set([['short-lived', 'x']], 300, signal()), [true])
  t.same(await direct.get(['short-lived'], 'value', signal()), ['x'])
  await waitFor(async () => (await direct.get(['short-lived'], 'value', signal()))[0] === null, 5000, () => 'the TTL did not expire the key')
})

t.test('errors are the router\'s, with its code and status; a call with a bad entry sends nothing', async (t) => {
  t.match(await rejection(direct.get(['bad\u0001key'], 'value', signal())), { code: 'invalid_key', statusCode: 400 })
  t.match(await rejection(direct.del('x'.repeat(251), signal())), { code: 'key_too_long', statusCode: 400 })
  t.match(await rejection(direct.set([['large', Buffer.alloc(1024 * 1024 + 1)]], undefined, signal())), { code: 'too_large', statusCode: 413 })
  t.match(await rejection(direct.set([['first-of-two', 'v'], ['bad\u0000', 'v']], undefined, signal())), { code: 'invalid_key' })
  t.same(await direct.get(['first-of-two'], 'value', signal()), [null], 'the good entry was not written either')
  await direct.set([['not-a-counter', 'text']], undefined, signal())
  t.match(await rejection(direct.incr('not-a-counter', 1n, signal())), { code: 'not_a_counter', statusCode: 409 })
})

t.test('abort: an aborted call sends nothing; a call aborted in flight rejects at once with the reason', async (t) => {
  const before = new AbortController()
  before.abort(new Error('changed my mind'))
  t.match(await rejection(direct.set([['never-sent', 'v']], undefined, before.signal)), { message: 'changed my mind' })
  t.same(await direct.get(['never-sent'], 'value', signal()), [null])

  const during = new AbortController()
  const call = direct.get(['k2'], 'value', during.signal)
  during.abort(new Error('too slow for me'))
  t.match(await rejection(call), { message: 'too slow for me' })
  t.same(await direct.get(['k2'], 'value', signal()), [{ a: [1, null, 'x'] }], 'the connection serves the next call')
})

t.test('the client follows the router\'s config: a reload\'s new generation is routed by within refreshMs', async (t) => {
  t.equal(await decision('moved:1', 'prefix'), 'main')
  const generation = await cluster.publish(cluster.configText([{ prefix: 'moved:', pool: 'sessions' }]))
  const reloadedAt = Date.now()
  await waitFor(async () => (await direct.explain('moved:1')).generation === generation, REFRESH_MS + 3000, () => 'the client did not follow the reload')
  t.ok(Date.now() - reloadedAt < REFRESH_MS + 3000)
  t.equal(await decision('moved:1', 'prefix'), 'sessions')
  t.same(await direct.set([['moved:1', 'in sessions']], undefined, signal()), [true])
  t.same(await api('/moved%3A1'), { status: 200, body: { value: 'in sessions' } }, 'the router finds it where the client put it')
})

t.test('a reload that moves keys: clients old and new read through to the previous owners as the router does', async (t) => {
  const keys = Array.from({ length: 20 }, (_, i) => `warm:${i}`)
  await direct.set(keys.map((key) => [key, `before ${key}`]), undefined, signal())
  const generation = await cluster.publish(cluster.configText([{ prefix: 'moved:', pool: 'sessions' }], 4000))
  await waitFor(async () => (await direct.explain('k')).generation === generation, REFRESH_MS + 3000, () => 'the client did not follow the reload')
  const fresh = new DirectTransport({ topology: { adminUrl: cluster.router.adminUrl } })
  t.teardown(() => fresh.close())
  const warmUp = async (explain: (key: string) => Promise<{ steps: { route: string; decision: string }[] }>, key: string) => (await explain(key)).steps.find((step) => step.route === 'warm-up')?.decision
  const routerSays = await Promise.all(keys.map((key) => warmUp(async (k) => (await cluster.admin(`/admin/route/${pathSegment(k)}`)).body, key)))
  t.ok(routerSays.some((decision) => decision?.includes('on a miss read')), 'some keys moved')
  t.same(await Promise.all(keys.map((key) => warmUp((k) => direct.explain(k), key))), routerSays, 'the client that saw the reload opened the same window')
  t.same(await Promise.all(keys.map((key) => warmUp((k) => fresh.explain(k), key))), routerSays, 'a client started after it took the router\'s window')
  t.same(await fresh.get(keys, 'value', signal()), keys.map((key) => `before ${key}`), 'and finds the moved keys on their previous owners')
})

t.test('a config file as the topology routes as the router does', async (t) => {
  const fromFile = new DirectTransport({ topology: { configFile: cluster.configFile } })
  t.teardown(() => fromFile.close())
  t.same(await fromFile.set([['from-file', [1, 2, 3]], ['moved:2', 'm']], undefined, signal()), [true, true])
  t.same(await direct.get(['from-file', 'moved:2'], 'value', signal()), [[1, 2, 3], 'm'])
  t.same(await api(`/${pathSegment('moved:2')}`), { status: 200, body: { value: 'm' } })
})

t.test('createClient({ topology }) is direct mode', async (t) => {
  const client = createClient({ topology: { adminUrl: cluster.router.adminUrl } })
  t.teardown(() => client.close())
  t.equal(await client.set('via-facade', { direct: true }), true)
  t.same(await api('/via-facade'), { status: 200, body: { value: { direct: true } } })
  t.same(await client.get('via-facade'), { direct: true })
  t.match(await rejection(client.incr('via-facade')), { name: 'ShardlineError', code: 'not_a_counter', status: 409 }, 'a route\'s error keeps its code')
})

t.test('a primary killed: its keys go to its replica, as the router sends them', async (t) => {
  const keys: string[] = []
  for (let i = 0; keys.length < 3; i++) if ((await decision(`fo:${i}`, 'pool main')) === 'shard s0') keys.push(`fo:${i}`)
  t.match(await decision(keys[0], 'failover'), /^main\/s0\/primary /)
  await cluster.shards.s0.stop('SIGKILL')
  let last: unknown = null
  await waitFor(async () => {
    last = await rejection(direct.set(keys.map((key) => [key, `after ${key}`]), undefined, signal()))
    return last === null
  }, 5000, () => `writes to s0's keys never succeeded: ${String(last)}`)
  t.match(await decision(keys[0], 'failover'), /^main\/s0\/replica1 /)
  t.same(await direct.get(keys, 'value', signal()), keys.map((key) => `after ${key}`))
  for (const key of keys) t.same(await api(`/${pathSegment(key)}`), { status: 200, body: { value: `after ${key}` } }, 'the router reads them on the replica too')
})
