// The router's HTTP front in-process over an in-memory route tree: the seed API, counters, batches, both
// response budgets, bad input (fast-check: a 4xx JSON error, never a 5xx), the connection cap, closing.
import t from 'tap'
import fc from 'fast-check'
import { once } from 'node:events'
import net from 'node:net'
import { HybridLogicalClock } from '../../common/hlc.ts'
import { DEFAULT_CONNECTIONS, type ConnectionSettings } from '../../common/http-server.ts'
import { MAX_TTL_SECONDS } from '../../common/limits.ts'
import { createLogger } from '../../common/logger.ts'
import { createFront, BATCH_PATH } from '../../router/front.ts'
import { RouterMetrics } from '../../router/metrics.ts'
import { ResponseBudget } from '../../router/response-budget.ts'
import type { RouteTree } from '../../router/route-tree.ts'
import type { Op, OpResult } from '../../router/routes/route.ts'
import { waitFor } from '../helpers/processes.ts'

const LIMITS = { maxKeyBytes: 250, maxValueBytes: 1024, maxBatchOps: 10, maxBatchResponseBytes: 16 * 1024, maxInFlightResponseBytes: 64 * 1024, maxJsonDepth: 64 }
const stored = new Map<string, { value: Buffer; flags: number }>()
const routed: Op[] = []
/** Reads of these keys wait until the test opens their gate. */
const gates = new Map<string, Promise<void>>()
/** What the next increment answers (a hot counter's batched increment answers null). */
let incrResult: bigint | null = 0n
const tree = {
  config: { limits: { ...LIMITS } },
  access: { open: true },
  async route(op: Op): Promise<OpResult> {
    routed.push(op)
    if (op.key === 'boom') throw new Error('a bug in the route tree')
    if (op.kind === 'set') {
      stored.set(op.key, { value: op.value, flags: op.flags })
      return { kind: 'set', stored: true }
    }
    if (op.kind === 'delete') return { kind: 'delete', deleted: stored.delete(op.key) }
    if (op.kind === 'incr') return { kind: 'incr', value: incrResult }
    if (op.kind === 'counter') return { kind: 'counter', value: -(2n ** 63n) }
    const gate = gates.get(op.key)
    if (gate) await gate
    const entry = stored.get(op.key)
    return entry ? { kind: 'get', found: true, version: 1, ttlMs: -1, ...entry } : { kind: 'get', found: false }
  },
} as unknown as RouteTree

const metrics = new RouterMetrics(() => [], () => 1)
const budget = new ResponseBudget()
metrics.trackResponseBytes(() => budget.held)
const front = (connections: ConnectionSettings = DEFAULT_CONNECTIONS) => createFront({
  log: createLogger('front-test', 'silent'),
  maxValueBytes: 1024,
  connections,
  accessLog: false,
  clock: new HybridLogicalClock(),
  metrics,
  budget,
  tree: () => tree,
})
const app = front()
t.teardown(() => app.close())
const responseBytesHeld = async () => (await metrics.registry.getSingleMetric('shardline_router_response_bytes_in_flight')!.get()).values[0].value

const post = (url: string, payload: unknown, contentType = 'application/json') =>
  app.inject({ method: 'POST', url, headers: { 'content-type': contentType }, payload: typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload) })

t.test('the seed API round trip', async (t) => {
  t.same((await post('/k', { value: 'v', ttl: 60 })).json(), { stored: true })
  t.match(routed.at(-1), { kind: 'set', key: 'k', ttlMs: 60_000, flags: 0 })
  t.same((await app.inject('/k')).json(), { value: 'v' })
  t.same((await app.inject({ method: 'DELETE', url: '/k' })).json(), { deleted: true })
  const miss = await app.inject('/k')
  t.equal(miss.statusCode, 404)
  t.same(miss.json(), { error: 'not found', code: 'not_found' })
})

t.test('JSON values come back as the same JSON; writes carry increasing versions', async (t) => {
  for (const value of [{ a: [1, null, 'x'] }, 42, true, null, [1, 2], 'text', 'émoji 🎉', 'quote " backslash \\ newline \n tab \t del \u007f']) {
    await post('/json', { value })
    t.same((await app.inject('/json')).json(), { value })
  }
  const versions = routed.filter((op) => op.kind === 'set').map((op) => (op as { version: number }).version)
  t.ok(versions.every((v, i) => i === 0 || v > versions[i - 1]), 'versions increase')
})

t.test('raw bytes in with octet-stream, out with Accept', async (t) => {
  const bytes = Buffer.from([0, 255, 128, 10])
  t.equal((await post('/raw?ttl=5', bytes, 'application/octet-stream')).statusCode, 200)
  const raw = await app.inject({ url: '/raw', headers: { accept: 'application/octet-stream' } })
  t.same(raw.rawPayload, bytes)
  t.same((await app.inject('/raw')).json(), { value: bytes.toString('base64'), encoding: 'base64' })
})

t.test('any key up to the limit is reachable percent-encoded; the batch path is not a key', async (t) => {
  // URL clients resolve the dot segments "." and ".." (even as %2E) away: those two keys are
  // reachable only through the batch API.
  const isDotSegment = (key: string) => key === '.' || key === '..'
  await fc.assert(
    // eslint-disable-next-line no-control-regex
    fc.asyncProperty(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((k) => !/[\x00-\x1f\x7f-\x9f]/.test(k) && Buffer.byteLength(k) <= 250 && !isDotSegment(k)), async (key) => {
      const url = `/${encodeURIComponent(key)}`
      const set = await post(url, { value: key })
      if (set.statusCode !== 200) return false
      const got = await app.inject(url)
      return got.statusCode === 200 && got.json().value === key && (routed.at(-1) as { key: string }).key === Buffer.from(key, 'utf8').toString('latin1')
    }),
    { numRuns: 200 },
  )
  const dots = await post('/-/batch', { ops: [{ op: 'set', key: '..', value: 'dots' }, { op: 'get', key: '..' }] })
  t.same(dots.json().results[1], { value: 'dots' }, 'the key ".." through the batch API')
  await post(`/${encodeURIComponent('-/batch')}`, { value: 'a key that looks like the batch path' })
  t.same((await app.inject(`/${encodeURIComponent('-/batch')}`)).json(), { value: 'a key that looks like the batch path' })
})

t.test('bad keys and bodies get 4xx with {error, code}, never 5xx (fast-check)', async (t) => {
  const cases: Array<[string, () => ReturnType<typeof post>, number, string]> = [
    ['control character', () => app.inject('/a%00b'), 400, 'invalid_key'],
    ['too long', () => app.inject(`/${'k'.repeat(251)}`), 400, 'key_too_long'],
    ['bad JSON', () => post('/k', '{"value":'), 400, 'invalid_json'],
    ['no value', () => post('/k', { ttl: 5 }), 400, 'invalid_request'],
    ['C1 control character', () => app.inject('/a%C2%85b'), 400, 'invalid_key'],
    ['lone surrogate (not UTF-8)', () => app.inject('/a%ED%A0%80'), 400, 'invalid_url'],
    ['lone surrogate in a batch', () => post(BATCH_PATH, '{"ops":[{"op":"get","key":"a\\ud800"}]}'), 400, 'invalid_key'],
    ['bad percent-encoding', () => app.inject('/a%zz'), 400, 'invalid_url'],
    ['segment past maxParamLength', () => app.inject(`/${'k'.repeat(5000)}`), 414, 'url_too_long'],
    ['no route', () => app.inject({ method: 'PUT', url: '/k' }), 404, 'no_route'],
    ['no body at all', () => app.inject({ method: 'POST', url: '/k' }), 400, 'invalid_request'],
    ['empty JSON body', () => post('/k', ''), 400, 'invalid_request'],
    ['too large', () => post('/k', { value: 'x'.repeat(2000) }), 413, 'too_large'],
    ['wrong type', () => post('/k', 'hello', 'text/html'), 415, 'unsupported_media_type'],
    ['batch too big', () => post(BATCH_PATH, { ops: Array.from({ length: 11 }, () => ({ op: 'get', key: 'k' })) }), 400, 'invalid_request'],
    ['batch set without value', () => post(BATCH_PATH, { ops: [{ op: 'set', key: 'k' }] }), 400, 'invalid_request'],
    ['a bug, not the input', () => app.inject('/boom'), 500, 'internal'],
    ['a bug in one op of a batch', () => post(BATCH_PATH, { ops: [{ op: 'get', key: 'k' }, { op: 'get', key: 'boom' }] }), 500, 'internal'],
  ]
  for (const [name, request, status, code] of cases) {
    const response = await request()
    t.equal(response.statusCode, status, name)
    t.match(response.json(), { error: String, code }, name)
  }
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ value: v, ttl: -1 }))), fc.string({ minLength: 1, maxLength: 300 }), async (body, key) => {
      const response = await post(`/${encodeURIComponent(key)}`, body)
      if (response.statusCode >= 500) return false
      if (response.statusCode >= 400) return typeof response.json().code === 'string'
      return true
    }),
    { numRuns: 300 },
  )
})

t.test('a batch fans out and answers each op in order', async (t) => {
  await post('/b1', { value: 'one' })
  const response = await post(BATCH_PATH, {
    ops: [
      { op: 'get', key: 'b1' },
      { op: 'set', key: 'b2', value: { two: 2 }, ttl: 30 },
      { op: 'get', key: 'b2' },
      { op: 'get', key: 'missing' },
      { op: 'delete', key: 'b1' },
    ],
  })
  t.equal(response.statusCode, 200)
  t.same(response.json(), {
    results: [
      { value: 'one' },
      { stored: true },
      { value: { two: 2 } },
      { error: 'not found', code: 'not_found' },
      { deleted: true },
    ],
  })
  const bad = await post(BATCH_PATH, { ops: [{ op: 'set', key: 'ok', value: 1 }, { op: 'get', key: 'a\u0001' }] })
  t.equal(bad.statusCode, 400)
  t.match(bad.json(), { code: 'invalid_key', error: /^ops\[1\]: / })
  t.equal(stored.has('ok'), false, 'a refused batch changes nothing')
})

t.test('a batch set with encoding "base64" stores raw bytes, as an octet-stream POST does; only canonical base64 is taken', async (t) => {
  const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0x7b])
  const response = await post(BATCH_PATH, { ops: [{ op: 'set', key: 'b64', value: bytes.toString('base64'), encoding: 'base64', ttl: 5 }] })
  t.same(response.json(), { results: [{ stored: true }] })
  t.match(routed.at(-1), { kind: 'set', key: 'b64', flags: 0, ttlMs: 5000 })
  t.same((await app.inject({ url: '/b64', headers: { accept: 'application/octet-stream' } })).rawPayload, bytes, 'the exact bytes')
  t.same((await post(BATCH_PATH, { ops: [{ op: 'get', key: 'b64' }] })).json(), { results: [{ value: bytes.toString('base64'), encoding: 'base64' }] }, 'read back in the same form')
  const refusals: Array<[string, unknown]> = [
    ['not base64', { op: 'set', key: 'x', value: 'not base64!', encoding: 'base64' }],
    ['unpadded', { op: 'set', key: 'x', value: 'AAE', encoding: 'base64' }],
    ['not a string', { op: 'set', key: 'x', value: 42, encoding: 'base64' }],
    ['another encoding', { op: 'set', key: 'x', value: 'AAE=', encoding: 'hex' }],
    ['an encoding on a get', { op: 'get', key: 'x', encoding: 'base64' }],
  ]
  for (const [what, op] of refusals) {
    const refused = await post(BATCH_PATH, { ops: [op] })
    t.same([refused.statusCode, refused.json().code], [400, 'invalid_request'], what)
  }
  t.equal(stored.has('x'), false)
})

t.test('ttl: a number of seconds > 0 and at most 100 years, in the body, the query and batches', async (t) => {
  const refused = [0, -1, 2 ** 48, 2 ** 53, 1e12, 1e300, 'NaN', '1e400', '10']
  for (const ttl of refused) {
    const response = await post('/t', `{"value":1,"ttl":${typeof ttl === 'string' ? JSON.stringify(ttl) : ttl}}`)
    t.equal(response.statusCode, 400, `body ttl ${ttl}`)
    t.equal(response.json().code, 'invalid_ttl', `body ttl ${ttl}`)
    const batch = await post(BATCH_PATH, `{"ops":[{"op":"set","key":"t","value":1,"ttl":${typeof ttl === 'string' ? JSON.stringify(ttl) : ttl}}]}`)
    t.equal(batch.json().code, 'invalid_ttl', `batch ttl ${ttl}`)
  }
  t.equal((await post('/t', '{"value":1,"ttl":1e400}')).json().code, 'invalid_ttl', 'a JSON number past the double range')
  for (const ttl of ['0', '-1', String(2 ** 48), String(2 ** 53), '1e12', '1e300', 'NaN', '1e400', 'Infinity', '0x10', '', ' 5']) {
    const response = await post(`/t?ttl=${encodeURIComponent(ttl)}`, Buffer.from('x'), 'application/octet-stream')
    t.same([response.statusCode, response.json().code], [400, 'invalid_ttl'], `query ttl "${ttl}"`)
  }
  const accepted: Array<[number | string, number]> = [[2 ** 31, 2 ** 31 * 1000], [MAX_TTL_SECONDS, MAX_TTL_SECONDS * 1000], [0.0001, 1], [1.5, 1500]]
  for (const [ttl, ms] of accepted) {
    t.equal((await post('/t', { value: 1, ttl })).statusCode, 200, `body ttl ${ttl}`)
    t.equal((routed.at(-1) as { ttlMs: number }).ttlMs, ms)
    t.equal((await post(`/t?ttl=${ttl}`, Buffer.from('x'), 'application/octet-stream')).statusCode, 200, `query ttl ${ttl}`)
    t.equal((routed.at(-1) as { ttlMs: number }).ttlMs, ms)
  }
})

t.test('incr: no body or an empty one adds 1; by is an integer within ±(2^53-1); totals are exact', async (t) => {
  incrResult = 2n ** 63n - 1n
  const byOf = () => (routed.at(-1) as { by: bigint }).by
  for (const [name, response] of [
    ['no body', await app.inject({ method: 'POST', url: '/c/incr' })],
    ['empty JSON body', await post('/c/incr', '')],
    ['empty raw body', await post('/c/incr', Buffer.alloc(0), 'application/octet-stream')],
    ['{}', await post('/c/incr', {})],
  ] as const) {
    t.equal(response.body, '{"value":9223372036854775807}', `${name}: the exact total`)
    t.equal(byOf(), 1n, name)
  }
  await post('/c/incr', { by: -(2 ** 53 - 1) })
  t.equal(byOf(), -(2n ** 53n - 1n))
  for (const by of [2 ** 53, -(2 ** 53), 1.5, '1']) {
    t.equal((await post('/c/incr', { by })).json().code, 'invalid_request', `by ${by}`)
  }
  t.equal((await post('/c/incr', Buffer.from('5'), 'application/octet-stream')).statusCode, 400, 'a raw body is not an increment')
  incrResult = null
  t.same((await post('/c/incr', { by: 2 })).json(), { acknowledged: true }, 'a batched hot-counter increment')
  t.equal((await app.inject('/c/counter')).body, '{"value":-9223372036854775808}')
})

t.test('JSON nested deeper than limits.maxJsonDepth is refused with 400 too_deep (a reload applies)', async (t) => {
  const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`
  t.equal((await post('/d', `{"value":${nested(63)}}`)).statusCode, 200, '64 levels with the body object')
  for (const body of [`{"value":${nested(64)}}`, `{"value":${nested(1000)}}`, `{"ops":[{"op":"set","key":"d","value":${nested(100)}}]}`, nested(2000)]) {
    const response = await post(body.startsWith('{"ops"') ? BATCH_PATH : '/d', body)
    t.same([response.statusCode, response.json().code], [400, 'too_deep'])
  }
  const brackets = `{"value":"${'['.repeat(500)}\\"{{{"}`
  t.equal((await post('/d', brackets)).statusCode, 200, 'brackets inside strings (and escaped quotes) are text')
  tree.config.limits.maxJsonDepth = 2
  t.equal((await post('/d', '{"value":[1]}')).statusCode, 200)
  t.equal((await post('/d', '{"value":[[1]]}')).json().code, 'too_deep')
  tree.config.limits.maxJsonDepth = LIMITS.maxJsonDepth
})

t.test('a batch response past limits.maxBatchResponseBytes fails at once with 413; its bytes are let go', async (t) => {
  stored.set('big', { value: Buffer.alloc(1000, 'a'), flags: 0 })
  tree.config.limits.maxBatchResponseBytes = 5000
  const ops = Array.from({ length: 10 }, () => ({ op: 'get', key: 'big' }))
  const response = await post(BATCH_PATH, { ops })
  t.equal(response.statusCode, 413)
  t.match(response.json(), { error: String, code: 'response_too_large' })
  t.equal(await responseBytesHeld(), 0, 'nothing held once the response is done')
  t.equal((await post(BATCH_PATH, { ops: ops.slice(0, 4) })).statusCode, 200, 'a batch within the budget')
  t.equal((await post(BATCH_PATH, { ops: [] })).body, '{"results":[]}')
  tree.config.limits.maxBatchResponseBytes = LIMITS.maxBatchResponseBytes
})

t.test('values held by responses in progress are bounded router-wide: past it 503 overloaded', async (t) => {
  stored.set('big', { value: Buffer.alloc(1000, 'a'), flags: 0 })
  tree.config.limits.maxInFlightResponseBytes = 2500
  let open!: () => void
  gates.set('slow', new Promise<void>((resolve) => (open = resolve)))
  // The first batch holds two values while its last op waits.
  const holding = post(BATCH_PATH, { ops: [{ op: 'get', key: 'big' }, { op: 'get', key: 'big' }, { op: 'get', key: 'slow' }] })
  await waitFor(async () => (await responseBytesHeld()) === 2000, 2000)
  const refused = await app.inject('/big')
  t.same([refused.statusCode, refused.json().code], [503, 'overloaded'])
  const batch = await post(BATCH_PATH, { ops: [{ op: 'get', key: 'big' }] })
  t.same([batch.statusCode, batch.json().code], [503, 'overloaded'], 'a batch whose value does not fit')
  open()
  t.equal((await holding).statusCode, 200)
  t.equal(await responseBytesHeld(), 0, 'released when the response ends')
  t.equal((await app.inject('/big')).statusCode, 200)
  gates.delete('slow')
  tree.config.limits.maxInFlightResponseBytes = LIMITS.maxInFlightResponseBytes
})

/** Opens a connection to a listening front and resolves once it is connected. */
async function connect(port: number): Promise<net.Socket & { received: string }> {
  const socket = Object.assign(net.connect({ port, host: '127.0.0.1' }), { received: '' })
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => (socket.received += chunk))
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** Resolves when the connection is closed, whether by an end or a reset. */
const closed = (socket: net.Socket) => new Promise((resolve) => socket.once('close', resolve))

t.test('at the connection cap the longest-idle connection is closed; with none idle the new one gets 503', async (t) => {
  const capped = front({ max: 3, idleTimeoutMs: 5000, requestTimeoutMs: 10_000 })
  t.teardown(() => capped.close())
  await capped.listen({ port: 0, host: '127.0.0.1' })
  const { port } = capped.server.address() as net.AddressInfo
  const [first, second, third] = [await connect(port), await connect(port), await connect(port)]
  const fourth = await connect(port)
  await closed(first)
  t.notOk(second.destroyed || third.destroyed, 'the others stay open')

  let open!: () => void
  gates.set('slow', new Promise<void>((resolve) => (open = resolve)))
  const slowRequest = 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n'
  const routedBefore = routed.length
  for (const socket of [second, third, fourth]) socket.write(slowRequest)
  await waitFor(() => routed.slice(routedBefore).filter((op) => op.kind === 'get' && op.key === 'slow').length === 3, 2000)
  const fifth = await connect(port)
  await closed(fifth)
  t.match(fifth.received, /^HTTP\/1\.1 503 /)
  t.match(JSON.parse(fifth.received.split('\r\n\r\n')[1]), { error: String, code: 'too_many_connections' })
  open()
  await waitFor(() => [second, third, fourth].every((socket) => socket.received.includes('HTTP/1.1 404')), 2000)
  t.pass('the busy connections were answered')
  gates.delete('slow')
  for (const socket of [second, third, fourth]) socket.destroy()
})

t.test('requests arriving while the front closes get 503 shutting_down', async (t) => {
  const draining = front()
  await draining.listen({ port: 0, host: '127.0.0.1' })
  const { port } = draining.server.address() as net.AddressInfo
  let open!: () => void
  gates.set('slow', new Promise<void>((resolve) => (open = resolve)))
  const socket = await connect(port)
  const routedBefore = routed.length
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  await waitFor(() => routed.slice(routedBefore).some((op) => op.kind === 'get' && op.key === 'slow'), 2000)
  const closing = draining.close()
  // Once the server stops listening, a request on the open connection is one that arrived while closing.
  await waitFor(() => !draining.server.listening, 2000)
  const second = once(draining.server, 'request')
  socket.write('GET /k HTTP/1.1\r\nHost: x\r\n\r\n')
  await second
  open()
  await closed(socket)
  await closing
  const [first, refused] = socket.received.split(/(?=HTTP\/1\.1 )/)
  t.match(first, /^HTTP\/1\.1 404 /, 'the request in progress finishes')
  t.match(refused, /^HTTP\/1\.1 503 /)
  t.match(refused, /connection: close/i)
  t.same(JSON.parse(refused.split('\r\n\r\n')[1]), { error: 'the server is shutting down', code: 'shutting_down' })
  gates.delete('slow')
})

t.test('a client gone before its value arrives holds nothing of the router-wide budget', async (t) => {
  const listening = front()
  t.teardown(() => listening.close())
  await listening.listen({ port: 0, host: '127.0.0.1' })
  const { port } = listening.server.address() as net.AddressInfo
  stored.set('slow', { value: Buffer.alloc(1000, 'a'), flags: 0 })
  let open!: () => void
  gates.set('slow', new Promise<void>((resolve) => (open = resolve)))
  const socket = await connect(port)
  const routedBefore = routed.length
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  await waitFor(() => routed.length > routedBefore, 2000)
  socket.destroy()
  await waitFor(() => new Promise<boolean>((resolve) => listening.server.getConnections((_error, count) => resolve(count === 0))), 2000)
  open()
  // The handler resumes within the turn the gate opens in; the next turn sees what it held.
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(await responseBytesHeld(), 0)
  gates.delete('slow')
})
