// The client facade against a scripted stand-in router: options and arguments refused before anything is
// sent (with the router's code where it has the same rule), a pre-aborted call, maxInFlight, close().
import t from 'tap'
import type http from 'node:http'
import { MAX_TTL_SECONDS } from '../../common/limits.ts'
import { createClient, type ClientOptions, type ShardlineClient } from '../../client/index.ts'
import { waitFor } from '../helpers/processes.ts'
import { scriptedRouter, sendJson } from '../helpers/client-router.ts'

t.test('options: exactly one of url and topology, a router origin, every number within its range, no unknown names', async (t) => {
  const url = 'http://127.0.0.1:1'
  const refused: Array<[unknown, RegExp]> = [
    [{}, /either url .* or topology/],
    [{ url, topology: { configFile: 'router.yaml' } }, /not both or neither/],
    [{ url: 'ftp://router' }, /http\(s\) URL/],
    [{ url: 'router:8080' }, /http\(s\) URL/],
    [{ url: 42 }, /http\(s\) URL/],
    [{ url: 'http://router:8080/cache' }, /origin/],
    [{ url: 'http://user:secret@router:8080' }, /origin/],
    [{ url, timeoutMs: 0 }, /timeoutMs must be a whole number from 1 to 2147483647, not 0/],
    [{ url, timeoutMs: 1.5 }, /timeoutMs/],
    [{ url, timeoutMs: 2 ** 31 }, /timeoutMs/],
    [{ url, maxInFlight: 0 }, /maxInFlight/],
    [{ url, connections: 0 }, /connections/],
    [{ url, connections: 5000 }, /connections/],
    [{ url, retries: -1 }, /retries/],
    [{ url, retries: 11 }, /retries/],
    [{ url, retries: '2' }, /retries must be a whole number from 0 to 10, not "2"/],
    [{ url, timeout: 5 }, /unknown option timeout/],
    [null, /options object/],
  ]
  for (const [options, message] of refused) {
    t.throws(() => createClient(options as ClientOptions), { name: 'ShardlineError', code: 'invalid_argument', message }, JSON.stringify(options))
  }
  const client = createClient({ url: 'http://127.0.0.1:1/', timeoutMs: 50, retries: 0, connections: 1, maxInFlight: 1 })
  await t.rejects(client.get('k'), { code: 'connection_error' }, 'a router nobody listens at: connection_error')
  await client.close()
})

t.test('arguments are refused before anything is sent, each with a code', async (t) => {
  const { url, requests } = await scriptedRouter(t, (_, response) => sendJson(response, 500, { error: 'unexpected', code: 'unexpected' }))
  const client = createClient({ url })
  t.teardown(() => client.close())
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  const loose = client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  const cases: Array<[string, () => Promise<unknown>, string]> = [
    ['an empty key', () => client.get(''), 'invalid_key'],
    ['a key that is not a string', () => loose.get(42), 'invalid_argument'],
    ['a control character', () => client.set('a\u0001', 'v'), 'invalid_key'],
    ['a C1 control character', () => client.del('a\u0085'), 'invalid_key'],
    ['a lone surrogate', () => client.counter('a\ud800'), 'invalid_key'],
    ['a bad key among good ones', () => client.mget(['a', '', 'b']), 'invalid_key'],
    ['ttl 0', () => client.set('k', 'v', { ttl: 0 }), 'invalid_ttl'],
    ['ttl past 100 years', () => client.set('k', 'v', { ttl: MAX_TTL_SECONDS + 1 }), 'invalid_ttl'],
    ['ttl NaN', () => client.mset({ k: 'v' }, { ttl: NaN }), 'invalid_ttl'],
    ['ttl a string', () => loose.set('k', 'v', { ttl: '5' }), 'invalid_ttl'],
    ['by a fraction', () => client.incr('c', 1.5), 'invalid_argument'],
    ['by 2^53, not a safe integer', () => client.incr('c', 2 ** 53), 'invalid_argument'],
    ['by past 64 bits', () => client.incr('c', 2n ** 63n), 'invalid_argument'],
    ['by a string', () => loose.incr('c', '1'), 'invalid_argument'],
    ['an undefined value', () => loose.set('k', undefined), 'invalid_argument'],
    ['a function value', () => loose.set('k', () => 1), 'invalid_argument'],
    ['a cyclic value', () => client.set('k', cyclic as never), 'invalid_argument'],
    ['a bigint inside a value', () => loose.set('k', { n: 1n }), 'invalid_argument'],
    ['a bad value among good ones (nothing is written)', () => loose.mset([['a', 1], ['b', undefined]]), 'invalid_argument'],
    ['an entry that is not a pair', () => loose.mset([['k']]), 'invalid_argument'],
    ['entries that are not entries', () => loose.mset(7), 'invalid_argument'],
    ['mget of a string', () => loose.mget('k'), 'invalid_argument'],
    ['as: text', () => loose.get('k', { as: 'text' }), 'invalid_argument'],
    ['a signal that is not an AbortSignal', () => loose.get('k', { signal: {} }), 'invalid_argument'],
    ['a call timeout of 0', () => client.get('k', { timeoutMs: 0 }), 'invalid_argument'],
  ]
  for (const [what, call, code] of cases) await t.rejects(call(), { name: 'ShardlineError', code }, what)
  const aborted = new AbortController()
  aborted.abort(new Error('the caller gave up'))
  const error = await client.get('k', { signal: aborted.signal }).catch((caught: unknown) => caught)
  t.match(error, { name: 'ShardlineError', code: 'aborted', cause: { message: 'the caller gave up' } }, 'an aborted signal: aborted, with its reason as the cause')
  t.same(requests, [], 'nothing was sent')
  t.same(await client.mget([]), [], 'mget of no keys')
  t.same(await client.mset([]), [], 'mset of no entries')
  t.same(requests, [], 'and that sends nothing either')
})

t.test('maxInFlight: past it a call rejects queue_full at once; close() waits for calls in flight, later calls reject closed', async (t) => {
  const held: http.ServerResponse[] = []
  const { url, requests } = await scriptedRouter(t, (_, response) => held.push(response))
  const client: ShardlineClient = createClient({ url, maxInFlight: 2, timeoutMs: 10_000 })
  const first = client.counter('a')
  const second = client.counter('b')
  await t.rejects(client.counter('c'), { code: 'queue_full', message: /maxInFlight 2/ })
  await waitFor(() => held.length === 2, 5000)
  sendJson(held[0], 200, '{"value":1}')
  t.equal(await first, 1n)
  const third = client.counter('c')
  await waitFor(() => held.length === 3, 5000)

  let closed = false
  const closing = client.close().then(() => (closed = true))
  await t.rejects(client.get('d'), { code: 'closed' }, 'a call after close()')
  t.equal(closed, false, 'close() waits while calls are in flight')
  sendJson(held[1], 200, '{"value":9223372036854775807}')
  sendJson(held[2], 200, '{"value":-9223372036854775808}')
  t.equal(await second, 2n ** 63n - 1n, 'totals are exact past 2^53')
  t.equal(await third, -(2n ** 63n))
  await closing
  t.equal(closed, true, 'close() resolved once they settled')
  t.equal(requests.length, 3)
  t.equal(client.close(), client.close(), 'close() again: the same promise')
})
