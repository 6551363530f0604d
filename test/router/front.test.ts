// The router's HTTP front in-process (fastify inject) over an in-memory route tree: the seed
// API, raw bytes, batches, and bad input from fast-check: always a 4xx JSON error, never a 5xx.
import t from 'tap'
import fc from 'fast-check'
import { HybridLogicalClock } from '../../common/hlc.ts'
import { createLogger } from '../../common/logger.ts'
import { createFront, BATCH_PATH } from '../../router/front.ts'
import { RouterMetrics } from '../../router/metrics.ts'
import type { RouteTree } from '../../router/route-tree.ts'
import type { Op, OpResult } from '../../router/routes/route.ts'

const stored = new Map<string, { value: Buffer; flags: number }>()
const routed: Op[] = []
const tree = {
  config: { limits: { maxKeyBytes: 250, maxValueBytes: 1024, maxBatchOps: 10 } },
  async route(op: Op): Promise<OpResult> {
    routed.push(op)
    if (op.kind === 'set') {
      stored.set(op.key, { value: op.value, flags: op.flags })
      return { kind: 'set', stored: true }
    }
    if (op.kind === 'delete') return { kind: 'delete', deleted: stored.delete(op.key) }
    const entry = stored.get(op.key)
    return entry ? { kind: 'get', found: true, version: 1, ttlMs: -1, ...entry } : { kind: 'get', found: false }
  },
} as unknown as RouteTree

const app = createFront({
  log: createLogger('front-test', 'silent'),
  maxValueBytes: 1024,
  accessLog: false,
  clock: new HybridLogicalClock(),
  metrics: new RouterMetrics(() => [], () => 1),
  tree: () => tree,
})
t.teardown(() => app.close())

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
  for (const value of [{ a: [1, null, 'x'] }, 42, true, null, [1, 2], 'text', 'émoji 🎉']) {
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
    fc.asyncProperty(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((k) => !/[\x00-\x1f\x7f]/.test(k) && Buffer.byteLength(k) <= 250 && !isDotSegment(k)), async (key) => {
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
    ['ttl zero', () => post('/k', { value: 1, ttl: 0 }), 400, 'invalid_request'],
    ['ttl text', () => post('/k', { value: 1, ttl: 'soon' }), 400, 'invalid_request'],
    ['too large', () => post('/k', { value: 'x'.repeat(2000) }), 413, 'too_large'],
    ['wrong type', () => post('/k', 'hello', 'text/html'), 415, 'unsupported_media_type'],
    ['batch too big', () => post(BATCH_PATH, { ops: Array.from({ length: 11 }, () => ({ op: 'get', key: 'k' })) }), 400, 'invalid_request'],
    ['batch set without value', () => post(BATCH_PATH, { ops: [{ op: 'set', key: 'k' }] }), 400, 'invalid_request'],
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
