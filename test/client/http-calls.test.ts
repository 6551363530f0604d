// HTTP mode against a real router over two real shards: every call alone and batched, JSON values and
// Buffers (UTF-8 and not), misses, any key, errors by code, and batching as the router counts requests.
import t from 'tap'
import { createClient, type CacheValue } from '../../client/index.ts'
import { run, waitFor } from '../helpers/processes.ts'
import { requestsByOp, startRouterOverShards } from '../helpers/client-router.ts'

const CLI = new URL('../../cli/shardline.ts', import.meta.url).pathname
const { router } = await startRouterOverShards(t, 2)
// Generous: the machine running the tests may be busy.
const client = createClient({ url: router.url, timeoutMs: 15_000 })
t.teardown(() => client.close())

/** Each value with what a read gives back: a Buffer of UTF-8 text reads as the string. */
const VALUES: Array<[CacheValue, CacheValue]> = [
  ['text', 'text'],
  ['', ''],
  ['émoji 🎉 "quote" \\ back\nslash', 'émoji 🎉 "quote" \\ back\nslash'],
  [{ a: [1, null, 'x'], nested: { deep: true } }, { a: [1, null, 'x'], nested: { deep: true } }],
  [42, 42],
  [-1.5e300, -1.5e300],
  [true, true],
  [[1, 'two', { three: 3 }], [1, 'two', { three: 3 }]],
  [Buffer.from('utf-8 bytes ✓'), 'utf-8 bytes ✓'],
  [Buffer.from([0xff, 0x00, 0xfe, 0x80]), Buffer.from([0xff, 0x00, 0xfe, 0x80])],
  [Buffer.alloc(0), ''],
]
/** The stored bytes of each value: what `as: 'buffer'` reads. */
const bytesOf = (value: CacheValue) => (Buffer.isBuffer(value) ? value : Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)))

t.test('set, get and del alone: every kind of value, a miss is null', async (t) => {
  for (const [i, [value, read]] of VALUES.entries()) {
    t.equal(await client.set(`alone-${i}`, value), true)
    t.same(await client.get(`alone-${i}`), read, `value ${i}`)
    t.same(await client.get(`alone-${i}`, { as: 'buffer' }), bytesOf(value), `value ${i} as a buffer`)
  }
  t.equal(await client.get('never-written'), null)
  t.equal(await client.del('alone-0'), true)
  t.equal(await client.del('alone-0'), false, 'nothing left to delete')
  t.equal(await client.get('alone-0'), null)
  t.equal(await client.set('json-null', null), true)
  t.same(await client.get('json-null', { as: 'buffer' }), Buffer.from('null'), 'a JSON null is stored (and reads as null, like a miss)')
})

t.test('mset and mget in one turn: every kind of value, misses in place, Buffers through the batch as base64', async (t) => {
  const before = await requestsByOp(router)
  t.same(await client.mset(VALUES.map(([value], i) => [`batched-${i}`, value] as const)), VALUES.map(() => true))
  const keys = [...VALUES.keys()].flatMap((i) => [`batched-${i}`, `missing-${i}`])
  t.same(await client.mget(keys), VALUES.flatMap(([, read]) => [read, null]))
  t.same(await client.mget(keys, { as: 'buffer' }), VALUES.flatMap(([value]) => [bytesOf(value), null]))
  t.same(await client.mset(new Map([['map-a', 1], ['map-b', 2]])), [true, true], 'a Map')
  t.same(await client.mset({ 'object-a': 'a', 'object-b': ['b'] }), [true, true], 'an object')
  t.same(await client.mget(['map-a', 'map-b', 'object-a', 'object-b']), [1, 2, 'a', ['b']])
  const after = await requestsByOp(router)
  t.equal(after.batch - (before.batch ?? 0), 6, 'each call was one batch')
  t.equal((after.get ?? 0) + (after.set ?? 0), (before.get ?? 0) + (before.set ?? 0), 'and nothing went alone')
})

t.test('any key reaches the router, alone and in a batch', async (t) => {
  const keys = ['a/b', 'a#b', 'a?b=c', 'a b', '%2F', 'a%', 'ключ', '鍵🔑', '-/batch', '.', '..', 'x'.repeat(250)]
  for (const key of keys) {
    t.equal(await client.set(key, `alone ${key}`), true, key)
    t.equal(await client.get(key), `alone ${key}`, key)
  }
  t.same(await client.mset(keys.map((key) => [key, `batched ${key}`])), keys.map(() => true))
  t.same(await client.mget(keys), keys.map((key) => `batched ${key}`))
  t.same(await Promise.all(keys.map((key) => client.del(key))), keys.map(() => true), 'deletes in one turn')
})

t.test('incr and counter: totals as bigints, exact past 2^53; a missing counter is 0', async (t) => {
  t.equal(await client.counter('hits'), 0n)
  t.equal(await client.incr('hits'), 1n)
  t.equal(await client.incr('hits', 5), 6n)
  t.equal(await client.incr('hits', -10n), -4n)
  t.equal(await client.counter('hits'), -4n)
  const max = 2 ** 53 - 1
  await client.incr('big', max)
  t.equal(await client.incr('big', BigInt(max)), 2n * BigInt(max), 'past 2^53, every digit')
  t.equal(await client.counter('big'), 2n * BigInt(max))
  await t.rejects(client.incr('big', 2n ** 60n), { code: 'invalid_request', status: 400 }, 'the HTTP API takes by within ±(2^53 - 1)')
  const totals = await Promise.all(Array.from({ length: 20 }, () => client.incr('together')))
  // Null: the router spread the counter, hot at once, over sub-counters, and batched that increment.
  const known = totals.filter((total) => total !== null)
  t.equal(new Set(known).size, known.length, `each total told once (${totals.length - known.length} batched)`)
  t.ok(known.every((total) => total >= 1n && total <= 20n))
  t.equal(await client.counter('together'), 20n, 'increments in one turn each count once')
})

t.test('errors carry the router\'s code and status, alone and for one op of a batch', async (t) => {
  await client.set('json', { not: 'a counter' })
  await t.rejects(client.incr('json'), { name: 'ShardlineError', code: 'not_a_counter', status: 409 })
  await t.rejects(client.counter('json'), { code: 'not_a_counter', status: 409 })
  const long = 'k'.repeat(251)
  await t.rejects(client.get(long), { code: 'key_too_long', status: 400 })
  // A batch the router refuses whole (one bad key): each op is sent alone, so only the bad one fails.
  const [good, bad, other] = await Promise.allSettled([client.set('good', 1), client.set(long, 2), client.get('good')])
  t.same(good, { status: 'fulfilled', value: true })
  t.match(bad, { status: 'rejected', reason: { code: 'key_too_long', status: 400 } })
  t.equal(other.status, 'fulfilled')
  await t.rejects(client.set('big', Buffer.alloc(1024 * 1024 + 1)), { code: 'too_large', status: 413 }, 'a value past limits.maxValueBytes')
})

t.test('a ttl expires the value', async (t) => {
  t.equal(await client.set('brief', 'soon gone', { ttl: 0.2 }), true)
  t.same(await client.mset([['brief-1', 1], ['brief-2', Buffer.from([0xff])]], { ttl: 0.2 }), [true, true])
  t.equal(await client.get('brief'), 'soon gone')
  await waitFor(async () => (await client.mget(['brief', 'brief-1', 'brief-2'])).every((value) => value === null), 5000)
})

t.test('batching: same-turn calls make one request, a lone call its plain request, batches split at the router\'s limits', async (t) => {
  let before = await requestsByOp(router)
  const delta = async () => {
    const now = await requestsByOp(router)
    const changes = Object.fromEntries(Object.keys(now).map((op) => [op, now[op] - (before[op] ?? 0)]).filter(([, change]) => change !== 0))
    before = now
    return changes
  }
  await Promise.all(Array.from({ length: 50 }, (_, i) => client.get(`turn-${i}`)))
  t.same(await delta(), { batch: 1 }, '50 gets in one turn: one batch')
  await Promise.all([client.get('a'), client.set('b', 1), client.del('c'), client.mget(['d', 'e'])])
  t.same(await delta(), { batch: 1 }, 'gets, sets, deletes and an mget in one turn: one batch')
  await client.get('lone')
  t.same(await delta(), { get: 1 }, 'a lone get: a plain GET')
  await client.set('lone', 'value')
  await client.del('lone')
  t.same(await delta(), { set: 1, delete: 1 }, 'a lone set and delete: their plain requests')
  await client.mget(Array.from({ length: 2500 }, (_, i) => `many-${i}`))
  t.same(await delta(), { batch: 3 }, '2,500 gets: three batches of at most limits.maxBatchOps (1,000)')
  // Eight values of 300 KB (400 KB as base64): one batch would pass the router's body limit (2 MiB and 4 KiB).
  const large = Array.from({ length: 8 }, (_, i) => [`large-${i}`, Buffer.alloc(300 * 1024, i + 1)] as const)
  t.same(await client.mset(large), large.map(() => true))
  t.same(await delta(), { batch: 4 }, 'large values: batches of at most 1 MiB')
  t.same(await client.mget(large.map(([key]) => key), { as: 'buffer' }), large.map(([, value]) => value))
})

t.test('the CLI\'s get, set and del go through the client: the router\'s JSON answers, exit 1 on a miss, 2 on a refusal', async (t) => {
  const cli = (...args: string[]) => run(process.execPath, [CLI, ...args, '--router', router.url])
  t.same(await cli('set', 'cli', '{"a":[1,2]}', '--json', '--ttl', '60'), { code: 0, stdout: '{"stored":true}\n', stderr: '' })
  t.same(await cli('get', 'cli'), { code: 0, stdout: '{"value":{"a":[1,2]}}\n', stderr: '' })
  await client.set('cli-bytes', Buffer.from([0xff, 0x01]))
  t.equal((await cli('get', 'cli-bytes')).stdout, '{"value":"/wE=","encoding":"base64"}\n', 'bytes that are not UTF-8 as the router answers them')
  t.same(await cli('del', 'cli'), { code: 0, stdout: '{"deleted":true}\n', stderr: '' })
  t.same(await cli('get', 'cli'), { code: 1, stdout: '', stderr: '404 {"error":"not found","code":"not_found"}\n' })
  t.match(await cli('get', 'k'.repeat(251)), { code: 2, stderr: /^400 \{"error":".*","code":"key_too_long"\}/ })
  t.match(await cli('set', 'cli', 'v', '--ttl', 'soon'), { code: 2, stderr: /ttl must be a number of seconds.*\(invalid_ttl\)/ })
  t.match(await run(process.execPath, [CLI, 'get', 'cli', '--router', 'http://127.0.0.1:1']), { code: 1, stderr: /could not be reached.*\(connection_error\)/ })
  t.match(await run(process.execPath, [CLI, 'get', 'cli', '--router', 'nowhere']), { code: 2, stderr: /--router: url must be an http\(s\) URL/ })
})
