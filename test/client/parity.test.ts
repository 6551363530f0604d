// Direct mode and the router agree, as properties over random keys and values (two pools, prefix
// routes, six shards): the client's route tree names the destination the router's /admin/route/:key
// names, or both refuse the key with the same code; and what one side writes the other reads back,
// for strings, JSON values and bytes that are not UTF-8.
import t from 'tap'
import fc from 'fast-check'
import { deepStrictEqual } from 'node:assert/strict'
import { isUtf8 } from 'node:buffer'
import { DirectTransport } from '../../client/direct-transport.ts'
import type { CacheValue } from '../../client/types.ts'
import { HttpError } from '../../common/http-errors.ts'
import type { RouteStep } from '../../router/routes/route.ts'
import { DIRECT_ROUTES, pathSegment, startDirectCluster } from '../helpers/direct-cluster.ts'

const RUNS = { numRuns: 200, seed: 1313 }
const cluster = await startDirectCluster(t)
const direct = new DirectTransport({ topology: { adminUrl: cluster.router.adminUrl } })
t.teardown(() => direct.close())
const signal = () => AbortSignal.timeout(5000)

// Keys a router takes: well-formed Unicode without control characters, from one character to past maxKeyBytes.
// eslint-disable-next-line no-control-regex
const acceptable = (key: string) => key.isWellFormed() && !/[\x00-\x1f\x7f-\x9f]/.test(key)
const text = (minLength: number, maxLength: number) => fc.string({ unit: 'binary', minLength, maxLength })
const keys = fc.oneof(
  text(1, 30),
  fc.tuple(fc.constantFrom(...DIRECT_ROUTES.map((route) => route.prefix)), text(0, 20)).map(([prefix, rest]) => prefix + rest),
  text(60, 120),
).filter(acceptable)
const storableKeys = keys.filter((key) => Buffer.byteLength(key) <= 250)

// The hot-keys step says what this router or client saw of the key's traffic, not where it goes.
const destination = (steps: RouteStep[]) => steps.filter((step) => step.route !== 'hot keys')

async function routerRoute(key: string): Promise<{ steps: RouteStep[] } | { refused: string }> {
  const response = await fetch(`${cluster.router.adminUrl}/admin/route/${pathSegment(key)}`)
  const body = await response.json() as { steps: RouteStep[]; code: string }
  return response.ok ? { steps: destination(body.steps) } : { refused: body.code }
}

async function directRoute(key: string): Promise<{ steps: RouteStep[] } | { refused: string }> {
  try {
    return { steps: destination((await direct.explain(key)).steps) }
  } catch (error) {
    if (error instanceof HttpError) return { refused: error.code }
    throw error
  }
}

t.test('every key goes where /admin/route/:key says, or is refused alike', async (t) => {
  const prefixesSeen = new Set<string>()
  await fc.assert(fc.asyncProperty(keys, async (key) => {
    const [routed, expected] = await Promise.all([directRoute(key), routerRoute(key)])
    deepStrictEqual(routed, expected)
    if ('steps' in routed) prefixesSeen.add(routed.steps[0].why)
  }), RUNS)
  // The route tree compares (and names) prefixes as their UTF-8 bytes in latin1 text, as it does keys.
  const asBytes = (prefix: string) => Buffer.from(prefix, 'utf8').toString('latin1')
  t.same([...prefixesSeen].filter((why) => why.startsWith('longest')).sort(), DIRECT_ROUTES.map((route) => `longest matching prefix "${asBytes(route.prefix)}"`).sort(), 'every prefix route was taken')
  t.ok(prefixesSeen.has('no prefix matches: default pool'))
})

const values: fc.Arbitrary<CacheValue> = fc.oneof(
  text(0, 40).filter((value) => value.isWellFormed()),
  fc.jsonValue({ maxDepth: 4 }).filter((value) => !/__proto__|constructor/.test(JSON.stringify(value))) as fc.Arbitrary<CacheValue>,
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => Buffer.from(bytes)).filter((bytes) => !isUtf8(bytes)),
)

/** What a read gives back: the same bytes, a string, or the JSON value as JSON reads it (-0 is 0). */
const readBack = (value: CacheValue) => (Buffer.isBuffer(value) || typeof value === 'string' ? value : JSON.parse(JSON.stringify(value)))

async function routerWrite(key: string, value: CacheValue): Promise<void> {
  const init = Buffer.isBuffer(value)
    ? { headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(value) }
    : { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value }) }
  const response = await fetch(`${cluster.router.url}/${pathSegment(key)}`, { method: 'POST', ...init })
  deepStrictEqual(await response.json(), { stored: true })
}

async function routerRead(key: string): Promise<CacheValue> {
  const body = await (await fetch(`${cluster.router.url}/${pathSegment(key)}`)).json() as { value: CacheValue; encoding?: string }
  return body.encoding === 'base64' ? Buffer.from(body.value as string, 'base64') : body.value
}

t.test('what direct mode writes the router reads, and the other way round', async (t) => {
  await fc.assert(fc.asyncProperty(storableKeys, values, fc.boolean(), async (key, value, directWrites) => {
    if (directWrites) deepStrictEqual(await direct.set([[key, value]], undefined, signal()), [true])
    else await routerWrite(key, value)
    const [directRead] = await direct.get([key], 'value', signal())
    deepStrictEqual(directRead, readBack(value))
    deepStrictEqual(await routerRead(key), readBack(value))
  }), RUNS)
  t.pass('200 keys and values read back alike')
})
