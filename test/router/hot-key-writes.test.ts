// The hot-key route for the ops the RESP front added: EXPIRE on a hot key reaches its copies (capped at
// copyTtl; 0 deletes them), a conditional SET touches the copies only when it applied, TTL reads the key itself.
import t from 'tap'
import { HotKeyRoute, copyKey } from '../../router/routes/hot-key-route.ts'
import type { PoolRoute } from '../../router/routes/pool-route.ts'
import type { Op, OpResult } from '../../router/routes/route.ts'

const COPY_TTL_MS = 1000
const store = new Map<string, { value: Buffer; ttlMs: number }>()
const sent: Op[] = []

function apply(op: Op): OpResult {
  sent.push(op)
  const entry = store.get(op.key)
  switch (op.kind) {
    case 'get':
      return entry ? { kind: 'get', found: true, value: entry.value, flags: 0, version: 1, ttlMs: entry.ttlMs } : { kind: 'get', found: false }
    case 'set':
      if ((op.condition === 'nx' && entry) || (op.condition === 'xx' && !entry)) return { kind: 'set', stored: false }
      store.set(op.key, { value: op.value, ttlMs: op.ttlMs ?? -1 })
      return { kind: 'set', stored: true }
    case 'expire':
      if (!entry) return { kind: 'expire', applied: false }
      if (op.ttlMs <= 0) store.delete(op.key)
      else entry.ttlMs = op.ttlMs
      return { kind: 'expire', applied: true }
    case 'ttl':
      return { kind: 'ttl', ttlMs: entry ? entry.ttlMs : -2 }
    default:
      throw new Error(`not used here: ${op.kind}`)
  }
}

const pool = {
  route: async (op: Op) => apply(op),
  routeToShard: async (_shard: string, op: Op) => apply(op),
  distinctShards: (_key: string, count: number) => ['a', 'b', 'c'].slice(0, count),
} as unknown as PoolRoute
const metrics = { copyRead: () => {}, copyFill: () => {}, counterBatch: () => {} }
const route = new HotKeyRoute('main', pool, { enabled: true, share: 0.01, minRate: 0, copies: 2, copyTtlMs: COPY_TTL_MS, counterShards: 2, counterWindowMs: 10 }, metrics)

const copies = (key: string) => [0, 1].map((i) => store.get(copyKey(key, i)))
const set = (key: string, extra: Partial<Extract<Op, { kind: 'set' }>> = {}) => route.route({ kind: 'set', key, value: Buffer.from('v'), flags: 0, version: Date.now() * 2048, ...extra })

// Reads make the key hot; a write through the route then fills its copies.
for (let i = 0; i < 200; i++) await route.route({ kind: 'get', key: 'hot' })
await set('hot')

t.test('a hot key\'s copies follow its EXPIRE, capped at copyTtl', async (t) => {
  t.ok(copies('hot').every((copy) => copy !== undefined), 'the write filled both copies')
  t.same(await route.route({ kind: 'expire', key: 'hot', ttlMs: 60_000 }), { kind: 'expire', applied: true })
  t.same(copies('hot').map((copy) => copy?.ttlMs), [COPY_TTL_MS, COPY_TTL_MS], 'a copy never outlives copyTtl')
  await route.route({ kind: 'expire', key: 'hot', ttlMs: 200 })
  t.same(copies('hot').map((copy) => copy?.ttlMs), [200, 200], 'nor the key')
  t.same(await route.route({ kind: 'ttl', key: 'hot' }), { kind: 'ttl', ttlMs: 200 }, 'TTL reads the key itself, not a copy')
  await route.route({ kind: 'expire', key: 'hot', ttlMs: 0 })
  t.same(copies('hot'), [undefined, undefined], 'EXPIRE 0 deletes the copies with the key')
  t.same(await route.route({ kind: 'get', key: 'hot' }), { kind: 'get', found: false })
})

t.test('a conditional SET writes the copies only when it applied, and without its condition', async (t) => {
  await set('hot')
  sent.length = 0
  t.same(await set('hot', { condition: 'nx', value: Buffer.from('other') }), { kind: 'set', stored: false })
  t.same(sent.map((op) => op.key), ['hot'], 'NX on a present key: the copies are left alone')
  sent.length = 0
  t.same(await set('hot', { condition: 'xx', value: Buffer.from('new') }), { kind: 'set', stored: true })
  const copyWrites = sent.filter((op) => op.key !== 'hot') as Extract<Op, { kind: 'set' }>[]
  t.equal(copyWrites.length, 2)
  t.ok(copyWrites.every((op) => op.condition === undefined && op.value.toString() === 'new'), 'copies are overwritten as versioned writes')
})
