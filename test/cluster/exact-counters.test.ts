// Counters through a real router and a replicated shard: exact past 2^53 (JSON number text and the
// stored value on both copies), overflow refused with nothing changed, and no destination knocked out.
import t from 'tap'
import { Redis } from 'ioredis'
import { INT64_MAX, INT64_MIN } from '../../common/limits.ts'
import { startReplicatedCluster } from '../helpers/replicated-cluster.ts'

const cluster = await startReplicatedCluster(t, { pairs: 1 })
const [pair] = cluster.pairs
const primary = new Redis({ host: pair.primary.host, port: pair.primary.port })
const replica = new Redis({ host: pair.replica.host, port: pair.replica.port })
t.teardown(() => {
  primary.disconnect()
  replica.disconnect()
})

/** The response's raw text: a value past 2^53 must be written exactly, which JSON.parse would not keep. */
async function api(path: string, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  const response = await fetch(`${cluster.router.url}${path}`, init)
  return { status: response.status, text: await response.text() }
}
const incr = (key: string, by: bigint) => api(`/${key}/incr`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"by":${by}}` })
const counter = (key: string) => api(`/${key}/counter`)

/** The stored value on the primary and, once it has caught up, on the replica. */
async function storedOnBoth(key: string): Promise<[string | null, string | null]> {
  await cluster.waitConverged(pair)
  return [await primary.get(key), await replica.get(key)]
}

/** How the router sees the primary and the replica. */
const routerViews = () => Promise.all([pair.primary, pair.replica].map((node) => cluster.routerView(node)))
// A destination may be knocked out once at start (the router can connect before a shard listens):
// what counts is that nothing here knocks one out again.
const ADMITTED = (await routerViews()).map((view) => ({ knockedOut: false, knockouts: view.knockouts }))

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

t.test('increments past 2^53 are exact in the answer, the counter read and the store, applied once', async (t) => {
  t.same(await incr('big', MAX_SAFE), { status: 200, text: `{"value":${MAX_SAFE}}` })
  t.same(await incr('big', MAX_SAFE), { status: 200, text: `{"value":${2n * MAX_SAFE}}` })
  t.same(await incr('big', 1n), { status: 200, text: `{"value":${2n * MAX_SAFE + 1n}}` })
  t.same(await counter('big'), { status: 200, text: `{"value":${2n * MAX_SAFE + 1n}}` })
  t.same(await storedOnBoth('big'), [String(2n * MAX_SAFE + 1n), String(2n * MAX_SAFE + 1n)])
  t.match(await routerViews(), ADMITTED, 'neither destination was knocked out')
  t.same(await incr('small', 2n), { status: 200, text: '{"value":2}' }, 'other counters are unaffected')
})

t.test('overflow past the signed 64-bit range is 409 counter_overflow and leaves both copies unchanged', async (t) => {
  await primary.call('INCRBY', 'edge', String(INT64_MAX - 1000n))
  t.match(await incr('edge', 1001n), { status: 409, text: /"code":"counter_overflow"/ })
  t.same(await storedOnBoth('edge'), [String(INT64_MAX - 1000n), String(INT64_MAX - 1000n)])
  t.same(await incr('edge', 1000n), { status: 200, text: `{"value":${INT64_MAX}}` })
  t.match(await incr('edge', 1n), { status: 409, text: /"code":"counter_overflow"/ })

  await primary.call('INCRBY', 'low', String(INT64_MIN + 1000n))
  t.match(await incr('low', -1001n), { status: 409, text: /"code":"counter_overflow"/ })
  t.same(await incr('low', -1000n), { status: 200, text: `{"value":${INT64_MIN}}` })
  t.same(await storedOnBoth('edge'), [String(INT64_MAX), String(INT64_MAX)])
  t.same(await storedOnBoth('low'), [String(INT64_MIN), String(INT64_MIN)])
  t.match(await routerViews(), ADMITTED, 'neither destination was knocked out')
})

t.test('a value that is not a signed 64-bit integer is 409 not_a_counter, to increments and reads', async (t) => {
  await primary.set('words', 'not a number')
  await primary.set('huge', String(INT64_MAX + 1n))
  for (const key of ['words', 'huge']) {
    t.match(await incr(key, 1n), { status: 409, text: /"code":"not_a_counter"/ }, `incr ${key}`)
    t.match(await counter(key), { status: 409, text: /"code":"not_a_counter"/ }, `counter ${key}`)
  }
  t.same(await storedOnBoth('huge'), [String(INT64_MAX + 1n), String(INT64_MAX + 1n)])
  t.match(await routerViews(), ADMITTED, 'neither destination was knocked out')
})
