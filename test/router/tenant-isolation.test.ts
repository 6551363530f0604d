// Tenant isolation, as a property (fast-check) against a router process over real shards: two tenants
// run random ops at the same time on the same random keys (namespace-like prefixes, separators, "..",
// percent signs, look-alike and invalid UTF-8 bytes), over HTTP and RESP, singly and in batches, with
// counters and hot keys spread over copies and sub-counters. Each tenant always sees exactly its own
// writes: neither ever reads, overwrites, deletes or counts the other's data.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import type { Redis } from 'ioredis'
import { dumpShard } from '../helpers/elastic-pool.ts'
import { respClient, send, startTenantRouter } from '../helpers/tenant-router.ts'

const cluster = await startTenantRouter(t, {
  tenants: `  - { name: alice, tokens: [alice-token], permissions: [read, write], namespace: alice }
  - { name: bob, tokens: [bob-token], permissions: [read, write], namespace: bob }
  - { name: ops, tokens: [ops-token], permissions: [admin] }`,
  // Low thresholds: the few keys of a run turn hot, so reads go to copies and increments to sub-counters.
  hotKeys: '{ share: 0.02, minRate: 5, copies: 3, counterShards: 3, counterWindowMs: 10 }',
})

type Name = 'alice' | 'bob'
const TENANTS: Record<Name, { token: string; redis: Redis }> = {
  alice: { token: 'alice-token', redis: respClient(t, cluster.respPort, { token: 'alice-token' }) },
  bob: { token: 'bob-token', redis: respClient(t, cluster.respPort, { tenant: 'bob', token: 'bob-token' }) },
}

/** Keys as the router holds them: a latin1 string of their bytes. */
type Key = string
type Entry = { type: 'value'; value: string } | { type: 'counter'; total: bigint }
/** What each tenant has written, across every run (the shards keep it too). */
const models: Record<Name, Map<Key, Entry>> = { alice: new Map(), bob: new Map() }

const bytes = (...values: number[]) => Buffer.from(values).toString('latin1')
const text = (value: string) => Buffer.from(value, 'utf8').toString('latin1')
const PIECES: Key[] = [
  'k', 'x', 'alice', 'bob', 'alice:', 'bob:', ':', '::', '.', '..', '../', '/', '\\', '%00', '%2F', '%2f', '%3A', '%', '%25', '?', '#', '&', '+', ' ', '*',
  text('é'), text('e\u0301'), text('ſ'), text('\u212A'), text('\uFF0F'), text('\u2215'), text('\uFF1A'), text('\u{1F600}'), text('\u200B'), text('\uFEFF'), text('bob\u200B:'),
  // Invalid UTF-8 (RESP only): overlong "/" and ":", a lone continuation byte, 0xFF.
  bytes(0xc0, 0xaf), bytes(0xc0, 0xba), bytes(0xe0, 0x80, 0xba), bytes(0x80), bytes(0xff),
]
const keyArb = fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 4 }).map((pieces) => pieces.join(''))

/** The key as URL text, when it is UTF-8 (else it can go over RESP only). */
function utf8(key: Key): string | null {
  const decoded = Buffer.from(key, 'latin1').toString('utf8')
  return Buffer.from(decoded, 'utf8').toString('latin1') === key ? decoded : null
}

type Op =
  | { kind: 'set'; key: Key; n: number }
  | { kind: 'get'; key: Key }
  | { kind: 'del'; key: Key }
  | { kind: 'incr'; key: Key; by: number }
  | { kind: 'counter'; key: Key }
  | { kind: 'ttl'; key: Key }
  | { kind: 'batch'; ops: Array<{ kind: 'set'; key: Key; n: number } | { kind: 'get'; key: Key } | { kind: 'del'; key: Key }> }
type Step = { tenant: Name; resp: boolean; op: Op }

// A run's few keys, each also as the other tenant's namespaced form would spell it: what an escape would hit.
const keysArb = fc.uniqueArray(keyArb, { minLength: 1, maxLength: 3 }).map((keys) => [...new Set(keys.flatMap((key) => [key, `alice:${key}`, `bob:${key}`]))])

const stepsArb = keysArb.chain((keys) => {
  const key = fc.constantFrom(...keys)
  const single = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), key, n: fc.nat(1000) }),
    fc.record({ kind: fc.constant('get' as const), key }),
    fc.record({ kind: fc.constant('del' as const), key }),
  )
  const op: fc.Arbitrary<Op> = fc.oneof(
    { arbitrary: single, weight: 6 },
    fc.record({ kind: fc.constant('incr' as const), key, by: fc.integer({ min: -5, max: 20 }) }),
    fc.record({ kind: fc.constant('counter' as const), key }),
    fc.record({ kind: fc.constant('ttl' as const), key }),
    fc.record({ kind: fc.constant('batch' as const), ops: fc.array(single, { minLength: 1, maxLength: 6 }) }),
  )
  return fc.array(fc.record({ tenant: fc.constantFrom<Name>('alice', 'bob'), resp: fc.boolean(), op }), { minLength: 1, maxLength: 40 })
})

let written = 0
const valueOf = (tenant: Name, n: number) => `${tenant}-${n}-${written++}`

// One step of one tenant: sent (unless it would mix a key's value and counter forms, which is no
// isolation question), its answer checked against the tenant's model, the model updated.
async function run(t: Test, { tenant, resp, op }: Step): Promise<void> {
  const model = models[tenant]
  const { token, redis } = TENANTS[tenant]
  const is = (key: Key, type: Entry['type']) => model.get(key) === undefined || model.get(key)!.type === type
  const path = (key: Key) => `/${encodeURIComponent(utf8(key)!)}`
  const http = (key: Key) => !resp && utf8(key) !== null
  const where = `${tenant} ${resp ? 'RESP' : 'HTTP'} ${JSON.stringify(op)}`
  switch (op.kind) {
    case 'set': {
      if (!is(op.key, 'value')) return
      const value = valueOf(tenant, op.n)
      if (http(op.key)) t.same((await send(cluster.router.url, 'POST', path(op.key), token, { value })).body, { stored: true }, where)
      else t.equal(await redis.set(Buffer.from(op.key, 'latin1'), value), 'OK', where)
      model.set(op.key, { type: 'value', value })
      return
    }
    case 'get': {
      if (!is(op.key, 'value')) return
      const expected = model.get(op.key)
      const found = http(op.key)
        ? await send(cluster.router.url, 'GET', path(op.key), token).then((answer) => (answer.status === 404 ? null : (answer.body as { value: string }).value))
        : await redis.get(Buffer.from(op.key, 'latin1'))
      t.equal(found, expected?.type === 'value' ? expected.value : null, where)
      return
    }
    case 'del': {
      if (!is(op.key, 'value')) return
      const deleted = http(op.key)
        ? ((await send(cluster.router.url, 'DELETE', path(op.key), token)).body as { deleted: boolean }).deleted
        : (await redis.del(Buffer.from(op.key, 'latin1'))) === 1
      t.equal(deleted, model.has(op.key), where)
      model.delete(op.key)
      return
    }
    case 'incr': {
      if (!is(op.key, 'counter')) return
      const total = ((model.get(op.key) as { total: bigint } | undefined)?.total ?? 0n) + BigInt(op.by)
      // What an increment answers is not always the total: a hot counter's is batched into a
      // sub-counter (acknowledged), and once it cools its base key's value leaves out the
      // sub-counters. The exact total is read right after (from the HTTP front, which can).
      if (http(op.key)) {
        const answer = (await send(cluster.router.url, 'POST', `${path(op.key)}/incr`, token, { by: op.by })).body as { value?: number; acknowledged?: true }
        t.ok(answer.acknowledged === true || typeof answer.value === 'number', `${where}: ${JSON.stringify(answer)}`)
      } else {
        t.type(await redis.incrby(Buffer.from(op.key, 'latin1'), op.by), 'number', where)
      }
      model.set(op.key, { type: 'counter', total })
      return checkCounter(t, tenant, op.key, where)
    }
    case 'counter':
      if (!is(op.key, 'counter')) return
      return checkCounter(t, tenant, op.key, where)
    case 'ttl': {
      // A hot counter's base key may not exist (its increments all went to sub-counters).
      if (!is(op.key, 'value')) return
      t.equal(await redis.pttl(Buffer.from(op.key, 'latin1')), model.has(op.key) ? -1 : -2, where)
      t.equal(await redis.exists(Buffer.from(op.key, 'latin1')), model.has(op.key) ? 1 : 0, where)
      return
    }
    case 'batch':
      return runBatch(t, tenant, resp, op.ops.filter((item, index) => is(item.key, 'value') && op.ops.findIndex((other) => other.key === item.key) === index), where)
  }
}

async function checkCounter(t: Test, tenant: Name, key: Key, where: string): Promise<void> {
  if (utf8(key) === null) return
  const total = (models[tenant].get(key) as { total: bigint } | undefined)?.total ?? 0n
  t.same((await send(cluster.router.url, 'GET', `/${encodeURIComponent(utf8(key)!)}/counter`, TENANTS[tenant].token)).body, { value: Number(total) }, `${where}: the total`)
}

// A batch's ops run at once, so each key appears once in it. HTTP: POST /-/batch; RESP: the
// multi-key command of each kind (MGET, MSET, DEL), in that order.
async function runBatch(t: Test, tenant: Name, resp: boolean, ops: Extract<Op, { kind: 'batch' }>['ops'], where: string): Promise<void> {
  const model = models[tenant]
  const { token, redis } = TENANTS[tenant]
  if (ops.length === 0) return
  const expectedRead = (key: Key) => (model.get(key) as { value: string } | undefined)?.value ?? null
  if (!resp && ops.every((op) => utf8(op.key) !== null)) {
    const values = ops.map((op) => (op.kind === 'set' ? valueOf(tenant, op.n) : null))
    const answer = await send(cluster.router.url, 'POST', '/-/batch', token, { ops: ops.map((op, i) => (op.kind === 'set' ? { op: 'set', key: utf8(op.key), value: values[i] } : { op: op.kind === 'get' ? 'get' : 'delete', key: utf8(op.key) })) })
    const expected = ops.map((op) => {
      if (op.kind === 'get') return expectedRead(op.key) === null ? { error: 'not found', code: 'not_found' } : { value: expectedRead(op.key) }
      return op.kind === 'set' ? { stored: true } : { deleted: model.has(op.key) }
    })
    t.same(answer.body, { results: expected }, where)
    ops.forEach((op, i) => {
      if (op.kind === 'set') model.set(op.key, { type: 'value', value: values[i]! })
      if (op.kind === 'del') model.delete(op.key)
    })
    return
  }
  const buffer = (key: Key) => Buffer.from(key, 'latin1')
  const gets = ops.filter((op) => op.kind === 'get')
  if (gets.length > 0) t.same(await redis.mget(...gets.map((op) => buffer(op.key))), gets.map((op) => expectedRead(op.key)), where)
  const sets = ops.filter((op) => op.kind === 'set')
  if (sets.length > 0) {
    const values = sets.map((op) => valueOf(tenant, op.n))
    t.equal(await redis.mset(...sets.flatMap((op, i) => [buffer(op.key), values[i]])), 'OK', where)
    sets.forEach((op, i) => model.set(op.key, { type: 'value', value: values[i] }))
  }
  const dels = ops.filter((op) => op.kind === 'del')
  if (dels.length > 0) {
    t.equal(await redis.del(...dels.map((op) => buffer(op.key))), dels.filter((op) => model.has(op.key)).length, where)
    for (const op of dels) model.delete(op.key)
  }
}

t.test('two tenants on the same keys at once: each sees exactly its own data', async (t) => {
  let failures = 0
  await fc.assert(fc.asyncProperty(stepsArb, async (steps) => {
    const before = failures
    // Each tenant's steps in order; the two tenants at the same time.
    await Promise.all((['alice', 'bob'] as const).map(async (tenant) => {
      for (const step of steps.filter((s) => s.tenant === tenant)) await run(t, step)
    }))
    failures = t.counts.fail
    return failures === before
  }), { numRuns: 100, endOnFailure: true })
})

t.test('on the shards every key is in a namespace, each tenant\'s values under its own, where /admin/route says', async (t) => {
  const held = new Map<string, boolean>()
  const shardOf = new Map<string, string>()
  for (const [index, shard] of cluster.shards.entries()) {
    for (const [key, { tombstone }] of await dumpShard(shard)) {
      held.set(key, held.get(key) === true || !tombstone)
      if (!tombstone) shardOf.set(key, `s${index}`)
    }
  }
  const outside = [...held.keys()].filter((key) => !key.startsWith('alice:') && !key.startsWith('bob:'))
  t.same(outside, [], 'no key outside the two namespaces')
  // What the run must have exercised: hot keys' copies (NUL h) and hot counters' sub-counters (NUL c).
  t.ok([...held.keys()].some((key) => key.includes('\u0000h')), 'hot-key copies were made')
  t.ok([...held.keys()].some((key) => key.includes('\u0000c')), 'hot counters were split')
  for (const tenant of ['alice', 'bob'] as const) {
    for (const [key, entry] of models[tenant]) {
      if (entry.type === 'value') t.ok(held.get(`${tenant}:${key}`), `${tenant}'s ${JSON.stringify(key)} is held as ${tenant}:…`)
    }
    const explained = [...models[tenant]].filter(([key, entry]) => entry.type === 'value' && utf8(key) !== null).slice(0, 10)
    for (const [key] of explained) {
      const answer = await send(cluster.router.adminUrl, 'GET', `/admin/route/${encodeURIComponent(utf8(key)!)}?tenant=${tenant}`, 'ops-token')
      const steps = (answer.body as { steps: Array<{ route: string; decision: string }> }).steps
      t.equal(steps[0].decision, tenant, 'the first step names the tenant')
      t.equal(steps.find((step) => step.route.startsWith('pool '))?.decision.replace('shard ', ''), shardOf.get(`${tenant}:${key}`), `/admin/route explains ${tenant}'s ${JSON.stringify(key)} where it is`)
    }
  }
  t.ok(held.size > 0)
})

t.test('a sweep of every key each tenant wrote reads its own value, never the other\'s', async (t) => {
  for (const tenant of ['alice', 'bob'] as const) {
    const { redis } = TENANTS[tenant]
    const keys = [...models.alice.keys(), ...models.bob.keys()]
    const found = await redis.mgetBuffer(...keys.map((key) => Buffer.from(key, 'latin1')))
    keys.forEach((key, i) => {
      const entry = models[tenant].get(key)
      if (entry?.type !== 'counter') t.equal(found[i]?.toString('utf8') ?? null, entry?.value ?? null, `${tenant} reads ${JSON.stringify(key)}`)
    })
  }
})
