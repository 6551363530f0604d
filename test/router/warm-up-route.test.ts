// The warm-up route over fake shards: a read that misses on a key's new owner reads its previous
// owners and back-fills the newest copy (never over a newer one, once per key at a time); deletes
// and expiries reach every owner; the window's end makes it a pass-through; draining shards are
// always read through; and the migration window a reload opens, carries or drops.
import t from 'tap'
import { createLogger } from '../../common/logger.ts'
import { HashRing } from '../../common/ring.ts'
import type { HotKeyConfig } from '../../router/config.ts'
import { MAX_PREVIOUS_RINGS, type Migration, NO_MIGRATION, nextMigration } from '../../router/migration-window.ts'
import { derivedKeyHome } from '../../router/pool-layout.ts'
import { subCounterKey } from '../../router/routes/hot-key-route.ts'
import { RingPoolRoute } from '../../router/routes/pool-route.ts'
import type { Op, OpResult, Route } from '../../router/routes/route.ts'
import { WarmUpRoute } from '../../router/routes/warm-up-route.ts'

const POINTS = 200
const hotKeys: HotKeyConfig = { enabled: true, share: 0.005, minRate: 50, copies: 4, copyTtlMs: 2000, counterShards: 4, counterWindowMs: 50 }

interface Entry { value: Buffer; version: number; flags: number; ttlMs: number; deleted?: boolean; counter?: true }

/** A shard as the router sees it: versioned writes, tombstones, counters; every op recorded. */
class FakeShard implements Route {
  readonly entries = new Map<string, Entry>()
  readonly ops: Op[] = []
  failing = false
  /** Runs before each op is applied: a test's hook to interleave other ops. */
  before: ((op: Op) => Promise<void>) | null = null

  async route(op: Op): Promise<OpResult> {
    this.ops.push(op)
    await this.before?.(op)
    if (this.failing) throw new Error('connection refused')
    const entry = this.entries.get(op.key)
    const live = entry && !entry.deleted ? entry : undefined
    switch (op.kind) {
      case 'get':
        return live ? { kind: 'get', found: true, value: live.value, version: live.version, flags: live.flags, ttlMs: live.ttlMs, ...(live.counter ? { counter: true } : {}) } : { kind: 'get', found: false }
      case 'set':
        if (op.condition === 'nx' ? live !== undefined : op.condition === 'xx' ? live === undefined : entry && entry.version >= op.version) return { kind: 'set', stored: false }
        this.entries.set(op.key, { value: op.value, version: op.version, flags: op.flags, ttlMs: op.ttlMs ?? -1 })
        return { kind: 'set', stored: true }
      case 'delete':
        if (entry && entry.version >= op.version) return { kind: 'delete', deleted: false }
        this.entries.set(op.key, { value: Buffer.alloc(0), version: op.version, flags: 0, ttlMs: -1, deleted: true })
        return { kind: 'delete', deleted: live !== undefined }
      case 'incr': {
        const value = BigInt(live ? live.value.toString() : '0') + op.by
        this.entries.set(op.key, { value: Buffer.from(String(value)), version: live?.version ?? 1, flags: live?.flags ?? 0, ttlMs: live?.ttlMs ?? -1, counter: true })
        return { kind: 'incr', value }
      }
      case 'counter':
        return { kind: 'counter', value: live ? BigInt(live.value.toString()) : 0n }
      case 'expire':
        if (!live) return { kind: 'expire', applied: false }
        if (op.ttlMs <= 0) this.entries.delete(op.key)
        else live.ttlMs = op.ttlMs
        return { kind: 'expire', applied: true }
      case 'ttl':
        return { kind: 'ttl', ttlMs: live ? live.ttlMs : -2 }
    }
  }

  explain() {
    return []
  }

  describe() {
    return {}
  }

  put(key: string, value: string, version: number, extra: Partial<Entry> = {}): void {
    this.entries.set(key, { value: Buffer.from(value), version, flags: 0, ttlMs: -1, ...extra })
  }

  value(key: string): string | undefined {
    const entry = this.entries.get(key)
    return entry && !entry.deleted ? entry.value.toString() : undefined
  }
}

function recorder() {
  const counts: Record<string, number> = {}
  const bump = (name: string) => { counts[name] = (counts[name] ?? 0) + 1 }
  return { counts, metrics: { read: (_pool: string, outcome: string) => bump(`read ${outcome}`), backfill: (_pool: string, outcome: string) => bump(`backfill ${outcome}`), declarePool: () => {} } }
}

const three = new HashRing(['a', 'b', 'c'], POINTS)
const four = new HashRing(['a', 'b', 'c', 'd'], POINTS)

/** A pool that grew from a, b, c to a, b, c, d within a window (or with the given migration). */
function grownPool(options: { migration?: Migration; ring?: HashRing; drainingRing?: HashRing | null } = {}) {
  const shards = new Map(['a', 'b', 'c', 'd'].map((name) => [name, new FakeShard()]))
  const ring = options.ring ?? four
  const next = new RingPoolRoute('main', shards as Map<string, Route>, ring)
  const { counts, metrics } = recorder()
  const route = new WarmUpRoute({
    next,
    migration: options.migration ?? { rings: [three], deadline: Date.now() + 60_000 },
    drainingRing: options.drainingRing ?? null,
    hotKeys,
    metrics,
    log: createLogger('warm-up-test', 'silent'),
  })
  const shard = (name: string) => shards.get(name)!
  return { route, shard, counts }
}

/** A key that moved from the shard `from` (under three) to d (under four). */
function movedKey(from?: string): string {
  for (let i = 0; ; i++) {
    const key = `key:${i}`
    if (four.lookup(key) === 'd' && (from === undefined || three.lookup(key) === from)) return key
  }
}

function stayingKey(): string {
  for (let i = 0; ; i++) if (four.lookup(`key:${i}`) === three.lookup(`key:${i}`)) return `key:${i}`
}

const get = (key: string): Op => ({ kind: 'get', key })

t.test('a miss on the new owner reads the previous owner, serves it and back-fills it with its version, TTL and flags', async (t) => {
  const { route, shard, counts } = grownPool()
  const key = movedKey()
  const old = shard(three.lookup(key))
  old.put(key, 'warm', 42, { flags: 7, ttlMs: 5000 })
  t.match(await route.route(get(key)), { found: true, version: 42, flags: 7, ttlMs: 5000 })
  t.match(shard('d').entries.get(key), { version: 42, flags: 7, ttlMs: 5000 }, 'the new owner now holds it')
  t.equal(shard('d').value(key), 'warm')
  t.same(counts, { 'read hit': 1, 'backfill stored': 1 })
  old.ops.length = 0
  t.match(await route.route(get(key)), { found: true, version: 42 })
  t.equal(old.ops.length, 0, 'the next read is served by the new owner alone')

  const missing = movedKey(three.lookup(key) === 'a' ? 'b' : 'a')
  t.same(await route.route(get(missing)), { kind: 'get', found: false })
  t.equal(counts['read miss'], 1, 'in neither: a miss')
  const never = { ...grownPool(), key: movedKey() }
  never.shard(three.lookup(never.key)).put(never.key, 'forever', 9)
  await never.route.route(get(never.key))
  t.equal(never.shard('d').entries.get(never.key)?.ttlMs, -1, 'a key without expiry is back-filled without one')
})

t.test('a key that kept its owner goes to it alone', async (t) => {
  const { route, shard } = grownPool()
  const key = stayingKey()
  t.same(await route.route(get(key)), { kind: 'get', found: false })
  t.same(['a', 'b', 'c', 'd'].map((name) => shard(name).ops.length), ['a', 'b', 'c', 'd'].map((name) => (name === four.lookup(key) ? 1 : 0)))
})

t.test('a write that lands on the new owner during the read-through is not overwritten, and is what the read returns', async (t) => {
  const { route, shard, counts } = grownPool()
  const key = movedKey()
  const old = shard(three.lookup(key))
  old.put(key, 'old', 10)
  // The write lands after the new owner missed and before the back-fill.
  old.before = async () => {
    old.before = null
    await route.route({ kind: 'set', key, value: Buffer.from('new'), flags: 0, version: 20 })
  }
  t.match(await route.route(get(key)), { found: true, version: 20 })
  t.equal(shard('d').value(key), 'new')
  t.same(counts, { 'read hit': 1, 'backfill older': 1 })
  t.equal(old.value(key), 'old', 'the write went to the new owner only')
})

t.test('the newest copy among several previous owners wins', async (t) => {
  // Two ownership changes within the window: b, c → a, b, c → a, b, c, d.
  const two = new HashRing(['b', 'c'], POINTS)
  let key = ''
  for (let i = 0; !key; i++) if (four.lookup(`k${i}`) === 'd' && three.lookup(`k${i}`) === 'a' && two.lookup(`k${i}`) !== 'a') key = `k${i}`
  const { route, shard } = grownPool({ migration: { rings: [three, two], deadline: Date.now() + 60_000 } })
  shard('a').put(key, 'newer', 30)
  shard(two.lookup(key)).put(key, 'older', 5)
  t.match(await route.route(get(key)), { found: true, version: 30 })
  t.equal(shard('a').ops.length + shard(two.lookup(key)).ops.length, 2, 'both read')
  t.equal(shard('d').value(key), 'newer')
})

t.test('concurrent reads of one key share one read-through and one back-fill', async (t) => {
  const { route, shard, counts } = grownPool()
  const key = movedKey()
  const old = shard(three.lookup(key))
  old.put(key, 'v', 3)
  const results = await Promise.all(Array.from({ length: 10 }, () => route.route(get(key))))
  t.ok(results.every((result) => result.kind === 'get' && result.found), 'every reader gets the value')
  t.equal(old.ops.length, 1, 'one read of the previous owner')
  t.equal(shard('d').ops.filter((op) => op.kind === 'set').length, 1, 'one back-fill')
  t.same(counts, { 'read hit': 1, 'backfill stored': 1 })
})

t.test('a previous owner that cannot be read counts as a miss there', async (t) => {
  const { route, shard } = grownPool()
  const key = movedKey()
  shard(three.lookup(key)).failing = true
  t.same(await route.route(get(key)), { kind: 'get', found: false })
})

t.test('a back-fill that fails still serves the value', async (t) => {
  const { route, shard, counts } = grownPool()
  const key = movedKey()
  shard(three.lookup(key)).put(key, 'v', 3)
  shard('d').before = async (op) => { if (op.kind === 'set') throw new Error('shard timeout') }
  t.match(await route.route(get(key)), { found: true, version: 3 })
  t.same(counts, { 'read hit': 1, 'backfill failed': 1 })
})

t.test('writes go to the new owner only; deletes go to every owner, versioned, and stay deleted', async (t) => {
  const { route, shard } = grownPool()
  const key = movedKey()
  const old = shard(three.lookup(key))
  old.put(key, 'old', 10)
  await route.route({ kind: 'set', key, value: Buffer.from('new'), flags: 0, version: 20 })
  t.equal(old.ops.length, 0, 'a plain write does not read or write the previous owner')
  t.same(await route.route({ kind: 'delete', key, version: 30 }), { kind: 'delete', deleted: true })
  t.match(old.entries.get(key), { deleted: true, version: 30 }, 'the previous owner keeps a tombstone')
  t.match(shard('d').entries.get(key), { deleted: true, version: 30 })
  t.same(await route.route(get(key)), { kind: 'get', found: false }, 'nothing is read back from the previous owner')

  const other = movedKey()
  shard(three.lookup(other)).put(other, 'only there', 10)
  t.same(await route.route({ kind: 'delete', key: other, version: 40 }), { kind: 'delete', deleted: true }, 'deleted counts on any owner')
})

t.test('a key the rebalance job moves between the two reads is found on the new owner, not missed', async (t) => {
  const { route, shard } = grownPool()
  const key = movedKey()
  const old = shard(three.lookup(key))
  old.put(key, 'moving', 4)
  // The job's PUTV to the new owner and DROP on the old one land after the new owner's miss.
  old.before = async (op) => {
    if (op.key !== key) return
    shard('d').put(key, 'moving', 4)
    old.entries.delete(key)
  }
  t.match(await route.route(get(key)), { found: true, value: Buffer.from('moving'), version: 4 })
})

t.test('a delete that fails on a previous owner fails the request', async (t) => {
  const { route, shard } = grownPool()
  const key = movedKey()
  shard(three.lookup(key)).failing = true
  await t.rejects(route.route({ kind: 'delete', key, version: 5 }), /connection refused/)
})

t.test('expiries reach every owner; TTL falls back to the previous owners on -2', async (t) => {
  const { route, shard } = grownPool()
  const key = movedKey()
  const old = shard(three.lookup(key))
  old.put(key, 'v', 3, { ttlMs: 90_000 })
  t.same(await route.route({ kind: 'ttl', key }), { kind: 'ttl', ttlMs: 90_000 }, 'the previous owner\'s TTL')
  t.same(await route.route({ kind: 'expire', key, ttlMs: 1000 }), { kind: 'expire', applied: true })
  t.equal(old.entries.get(key)?.ttlMs, 1000, 'the copy a back-fill would bring expires too')
  t.same(await route.route({ kind: 'ttl', key }), { kind: 'ttl', ttlMs: 1000 })
  t.same(await route.route({ kind: 'ttl', key: movedKey(three.lookup(key) === 'a' ? 'b' : 'a') }), { kind: 'ttl', ttlMs: -2 })
})

t.test('a SET value moves before an increment or a conditional write, and they go on from it on the new owner', async (t) => {
  const { route, shard } = grownPool()
  const key = movedKey()
  const old = shard(three.lookup(key))
  old.put(key, '5', 3)
  t.same(await route.route({ kind: 'incr', key, by: 2n }), { kind: 'incr', value: 7n }, 'counts on from the moved value')
  t.same(await route.route({ kind: 'counter', key }), { kind: 'counter', value: 7n }, 'not 7 + 5: the moved copy is not added again')
  t.equal(old.value(key), '5', 'the previous owner is left for the rebalance job')

  const other = movedKey()
  shard(three.lookup(other)).put(other, 'taken', 3)
  t.same(await route.route({ kind: 'set', key: other, value: Buffer.from('mine'), flags: 0, version: 9, condition: 'nx' }), { kind: 'set', stored: false }, 'NX sees the key held on the previous owner')
})

// A counter is never back-filled, whether increments grew it from nothing (epoch 1) or from a SET
// value (a later epoch): a copy of its sum would lose its per-writer parts.
for (const [origin, epoch] of [['nothing', 1], ['a SET value', 7]] as const) {
  t.test(`a counter grown from ${origin} is not back-filled: its parts on the new and previous owners add up`, async (t) => {
    const { route, shard, counts } = grownPool()
    const key = movedKey()
    const old = shard(three.lookup(key))
    old.put(key, '40', epoch, { counter: true })
    t.match(await route.route(get(key)), { found: true, value: Buffer.from('40') })
    t.equal(shard('d').value(key), undefined, 'not back-filled: the rebalance job moves counters')
    t.same(await route.route({ kind: 'incr', key, by: 2n }), { kind: 'incr', value: 42n }, 'the reply is the whole count')
    t.equal(shard('d').value(key), '2', 'the new owner counts from nothing')
    t.same(await route.route({ kind: 'counter', key }), { kind: 'counter', value: 42n })
    t.match(await route.route(get(key)), { found: true, value: Buffer.from('42') }, 'a read sums the parts too')
    t.equal(old.value(key), '40')
    t.same(counts, { 'read hit': 2 }, 'two read-throughs, no back-fill')
  })
}

t.test('a sub-counter read adds its value at its previous homes', async (t) => {
  const { route, shard } = grownPool()
  let sub = ''
  for (let i = 0; !sub; i++) {
    const candidate = subCounterKey(`hits:${i}`, 1)
    if (derivedKeyHome(three, candidate, hotKeys) !== derivedKeyHome(four, candidate, hotKeys)) sub = candidate
  }
  const home = derivedKeyHome(four, sub, hotKeys)!
  shard(derivedKeyHome(three, sub, hotKeys)!).put(sub, '40', 1, { counter: true })
  shard(home).put(sub, '2', 1, { counter: true })
  t.same(await route.routeToShard(home, { kind: 'counter', key: sub }), { kind: 'counter', value: 42n })
  t.same(await route.routeToShard(home, get(sub)), { kind: 'get', found: true, value: Buffer.from('2'), version: 1, flags: 0, ttlMs: -1, counter: true }, 'other ops on derived keys go to the shard named')
})

t.test('after the window the route is a pass-through', async (t) => {
  const { route, shard } = grownPool({ migration: { rings: [three], deadline: Date.now() - 1 } })
  const key = movedKey()
  const old = shard(three.lookup(key))
  old.put(key, 'stranded', 3)
  t.same(await route.route(get(key)), { kind: 'get', found: false })
  await route.route({ kind: 'delete', key, version: 9 })
  t.equal(old.ops.length, 0, 'the previous owner is not consulted')
  t.equal(route.windowSecondsLeft(), 0)
})

t.test('draining shards are always read through', async (t) => {
  // d drains: the ring is over a, b, c; the draining ring is the one over all four.
  const { route, shard, counts } = grownPool({ migration: NO_MIGRATION, ring: three, drainingRing: four })
  const key = movedKey()
  shard('d').put(key, 'draining', 8)
  t.match(await route.route(get(key)), { found: true, version: 8 })
  t.equal(shard(three.lookup(key)).value(key), 'draining', 'back-filled into its owner')
  t.same(counts, { 'read hit': 1, 'backfill stored': 1 })
  t.equal(route.windowSecondsLeft(), 0, 'no window is needed for that')
})

t.test('explain names the new owner, the previous owners and the seconds left', async (t) => {
  const { route } = grownPool()
  const key = movedKey()
  const [step] = route.explain(key)
  t.match(step, { route: 'warm-up', decision: `new owner d; on a miss read ${three.lookup(key)} and back-fill`, why: /migration window: (59|60) s left/ })
  t.match(route.explain(stayingKey())[0], { decision: /only \(it owned the key before too\)/ })
})

t.test('a reload opens a window when the owners change, carries it over when they do not, and keeps at most 4 rings', async (t) => {
  const now = 1_000_000
  t.same(nextMigration(undefined, four, 1000, now), NO_MIGRATION, 'a fresh start has no previous ring')
  const opened = nextMigration({ ring: three, migration: NO_MIGRATION }, four, 1000, now)
  t.same(opened, { rings: [three], deadline: now + 1000 })
  t.equal(nextMigration({ ring: four, migration: opened }, new HashRing(['d', 'c', 'b', 'a'], POINTS), 1000, now + 500), opened, 'the same owners carry the window over as it is')
  t.same(nextMigration({ ring: four, migration: opened }, four, 1000, now + 1000), NO_MIGRATION, 'until its deadline')
  t.same(nextMigration({ ring: three, migration: NO_MIGRATION }, new HashRing(['a', 'b', 'c'], POINTS + 1), 1000, now).rings, [three], 'other points per shard move keys too')
  t.same(nextMigration({ ring: three, migration: NO_MIGRATION }, four, 0, now), NO_MIGRATION, 'windowMs 0 turns warm-up off')

  const five = new HashRing(['a', 'b', 'c', 'd', 'e'], POINTS)
  const second = nextMigration({ ring: four, migration: opened }, five, 1000, now + 500)
  t.same(second, { rings: [four, three], deadline: now + 1500 }, 'a second change keeps both previous rings, newest first')
  t.same(nextMigration({ ring: four, migration: opened }, three, 1000, now + 500).rings, [four], 'going back drops the ring that is current again')
  let migration = NO_MIGRATION
  let ring = three
  for (let n = 4; n <= 9; n++) {
    const grown = new HashRing(Array.from({ length: n }, (_, i) => `s${i}`), POINTS)
    migration = nextMigration({ ring, migration }, grown, 1000, now)
    ring = grown
  }
  t.equal(migration.rings.length, MAX_PREVIOUS_RINGS, 'bounded: the oldest are dropped')
  t.same(migration.rings[0].nodes.length, 8, 'the newest kept is the ring just before')
})
