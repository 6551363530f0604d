// The store's semantics under a controllable clock: TTL, conditional and versioned writes,
// counters, the byte budget, the expiry sweep, what each eviction policy keeps, and the ranges it refuses.
import t from 'tap'
import { LOGICAL_RANGE } from '../../common/hlc.ts'
import { MAX_TTL_MS } from '../../common/limits.ts'
import { entryCost, Store, StoreError, type EvictionPolicy } from '../../shard/store.ts'
import { ENTRY_HEADER_BYTES, entryExpiresAt, entryFlags, entryValue, entryVersion, MAX_EXPIRES_AT, packEntry, rebaseExpiry } from '../../shard/entry.ts'

function clockedStore(policy: EvictionPolicy = 'lru', maxMemory = 1024 * 1024) {
  const clock = { now: 1_800_000_000_000 }
  const store = new Store({ maxMemory, policy, now: () => clock.now })
  return { store, clock }
}

const value = (packed: string | undefined) => (packed === undefined ? undefined : entryValue(packed))

t.test('get returns what set stored, byte for byte', async (t) => {
  const { store } = clockedStore()
  const bytes = Buffer.from([0, 1, 2, 200, 255, 13, 10])
  store.set('k', bytes)
  t.same(Buffer.from(value(store.get('k'))!, 'latin1'), bytes)
  t.equal(store.get('missing'), undefined)
  t.same(store.stats, { hits: 1, misses: 1, evictions: 0, expiredOnRead: 0, expiredBySweep: 0, admissionsRejected: 0 })
})

t.test('an expired entry is never returned', async (t) => {
  const { store, clock } = clockedStore()
  store.set('k', 'v', { ttlMs: 1000 })
  clock.now += 999
  t.equal(value(store.get('k')), 'v')
  t.equal(store.remainingTtl('k'), 1)
  clock.now += 1
  t.equal(store.get('k'), undefined, 'gone exactly at its expiry')
  t.equal(store.peek('k'), undefined)
  t.equal(store.remainingTtl('k'), -2)
  t.equal(store.stats.expiredOnRead, 1)
  t.equal(store.size, 0, 'removed, not just hidden')
})

t.test('the TTL of an entry already read never says the key is gone (SL.GETV replies from one read)', async (t) => {
  const { store, clock } = clockedStore()
  store.set('k', 'v', { ttlMs: 1 })
  const packed = store.get('k')!
  clock.now += 5
  t.equal(store.remainingTtl('k'), -2, 'a fresh lookup finds it expired')
  t.equal(store.remainingTtlOf(packed), 0, 'the entry read before its expiry has 0 ms left, not -2')
  store.set('p', 'v')
  t.equal(store.remainingTtlOf(store.get('p')!), -1)
})

t.test('remainingTtl reports -1 without expiry and -2 when missing', async (t) => {
  const { store } = clockedStore()
  store.set('k', 'v')
  t.equal(store.remainingTtl('k'), -1)
  t.equal(store.remainingTtl('nope'), -2)
})

t.test('expire sets, replaces and with 0 deletes; keepTtl keeps it across a write', async (t) => {
  const { store, clock } = clockedStore()
  store.set('k', 'v')
  t.equal(store.expire('k', 5000), true)
  t.equal(store.remainingTtl('k'), 5000)
  store.set('k', 'w', { keepTtl: true })
  t.equal(store.remainingTtl('k'), 5000)
  store.set('k', 'x')
  t.equal(store.remainingTtl('k'), -1, 'a plain write clears the TTL, as in Redis')
  t.equal(store.expire('missing', 10), false)
  t.equal(store.expire('k', 0), true)
  t.equal(store.get('k'), undefined)
  store.set('k', 'v', { ttlMs: 100 })
  clock.now += 100
  t.equal(store.expire('k', 1000), false, 'an expired key cannot be revived')
})

t.test('the sweep reclaims expired entries without reads, a bounded slice at a time', async (t) => {
  const { store, clock } = clockedStore('lru', 16 * 1024 * 1024)
  for (let i = 0; i < 1000; i++) store.set(`short${i}`, 'v', { ttlMs: 1000 })
  for (let i = 0; i < 10; i++) store.set(`long${i}`, 'v', { ttlMs: 60_000 })
  store.set('rewritten', 'v', { ttlMs: 1000 })
  store.set('rewritten', 'v', { ttlMs: 60_000 })
  t.equal(store.expiringKeys, 1011)
  t.equal(store.sweep(100), 0, 'nothing is due yet')
  clock.now += 1100
  t.equal(store.sweep(300), 300, 'the slice is bounded')
  let swept = 300
  while (swept < 1000) {
    const removed = store.sweep(300)
    t.ok(removed > 0, 'progress each tick')
    swept += removed
  }
  t.equal(swept, 1000)
  t.equal(store.size, 11, 'long-lived and rewritten keys stay')
  t.equal(store.stats.expiredBySweep, 1000)
  t.equal(value(store.peek('rewritten')), 'v')
  clock.now += 60_000
  t.equal(store.sweep(100), 11)
  t.equal(store.size, 0)
  t.equal(store.expiringKeys, 0)
})

t.test('nx and xx conditions', async (t) => {
  const { store, clock } = clockedStore()
  t.equal(store.set('k', 'a', { condition: 'xx' }), 'condition-failed')
  t.equal(store.set('k', 'a', { condition: 'nx' }), 'stored')
  t.equal(store.set('k', 'b', { condition: 'nx' }), 'condition-failed')
  t.equal(store.set('k', 'c', { condition: 'xx' }), 'stored')
  t.equal(value(store.get('k')), 'c')
  store.set('t', 'v', { ttlMs: 10 })
  clock.now += 10
  t.equal(store.set('t', 'w', { condition: 'nx' }), 'stored', 'an expired key counts as absent')
})

t.test('versioned writes apply only when newer (last writer wins)', async (t) => {
  const { store } = clockedStore()
  t.equal(store.set('k', 'new', { version: 200 }), 'stored')
  t.equal(store.set('k', 'old', { version: 100 }), 'stale')
  t.equal(store.set('k', 'same', { version: 200 }), 'stale')
  t.equal(value(store.get('k')), 'new')
  store.set('k', 'local')
  t.ok(entryVersion(store.get('k')!) > 200, 'local writes are versioned after what was observed')
})

t.test('flags are kept with the value', async (t) => {
  const { store } = clockedStore()
  store.set('k', 'v', { flags: 0xdeadbeef })
  t.equal(entryFlags(store.get('k')!), 0xdeadbeef)
})

t.test('incrBy counts from 0, keeps TTL, refuses non-integers and overflow', async (t) => {
  const { store } = clockedStore()
  t.equal(store.incrBy('c', 5n), 5n)
  t.equal(store.incrBy('c', -7n), -2n)
  store.expire('c', 10_000)
  store.incrBy('c', 1n)
  t.equal(store.remainingTtl('c'), 10_000)
  store.set('s', 'abc')
  t.throws(() => store.incrBy('s', 1n), /not an integer/)
  store.set('big', '9223372036854775807')
  t.throws(() => store.incrBy('big', 1n), /overflow/)
  t.equal(value(store.get('big')), '9223372036854775807', 'a refused increment changes nothing')
})

t.test('the byte budget holds: stored bytes never pass maxMemory, old entries are evicted', async (t) => {
  const maxMemory = 256 * 1024
  const { store } = clockedStore('lru', maxMemory)
  const payload = Buffer.alloc(1000, 7)
  for (let i = 0; i < 5000; i++) {
    store.set(`key:${i}`, payload)
    if (store.bytes > maxMemory) t.fail(`over budget after ${i} writes: ${store.bytes}`)
  }
  const perEntry = entryCost('key:4999', packEntry(payload, { version: 1, expiresAt: 0, flags: 0 }))
  t.ok(store.size >= Math.floor(maxMemory / perEntry) - 1, `holds as many entries as fit (${store.size})`)
  t.equal(store.stats.evictions, 5000 - store.size)
  t.equal(store.get('key:0'), undefined, 'the oldest is gone')
  t.ok(store.get('key:4999'), 'the newest is there')
})

// Fills a store that holds about 10 entries, touches key 0, then adds more.
function survivesAfterRead(policy: EvictionPolicy): boolean {
  const payload = Buffer.alloc(100)
  const cost = entryCost('key:0', packEntry(payload, { version: 1, expiresAt: 0, flags: 0 }))
  const { store } = clockedStore(policy, cost * 10)
  for (let i = 0; i < 10; i++) store.set(`key:${i}`, payload)
  for (let r = 0; r < 3; r++) store.get('key:0')
  for (let i = 10; i < 15; i++) {
    store.get(`key:${i}`)
    store.set(`key:${i}`, payload)
  }
  return store.peek('key:0') !== undefined
}

t.test('lru keeps a recently read entry; fifo evicts in insertion order regardless', async (t) => {
  t.equal(survivesAfterRead('lru'), true)
  t.equal(survivesAfterRead('fifo'), false)
})

t.test('lfu admits a newcomer only if it is asked for more often than the victim', async (t) => {
  const payload = Buffer.alloc(100)
  const cost = entryCost('hot:0', packEntry(payload, { version: 1, expiresAt: 0, flags: 0 }))
  const { store } = clockedStore('lfu', cost * 10)
  for (let i = 0; i < 10; i++) {
    store.set(`hot:${i}`, payload)
    for (let r = 0; r < 5; r++) store.get(`hot:${i}`)
  }
  for (let i = 0; i < 100; i++) store.set(`scan:${i}`, payload)
  for (let i = 0; i < 10; i++) t.ok(store.peek(`hot:${i}`), `hot:${i} survived a scan`)
  t.equal(store.stats.admissionsRejected, 100)
  for (let r = 0; r < 20; r++) store.get('new')
  t.equal(store.set('new', payload), 'stored', 'a key asked for often gets in')
  t.equal(store.stats.evictions, 1)
})

t.test('clear empties everything', async (t) => {
  const { store } = clockedStore()
  store.set('a', '1', { ttlMs: 1000 })
  store.set('b', '2')
  store.clear()
  t.equal(store.size, 0)
  t.equal(store.bytes, 0)
  t.equal(store.expiringKeys, 0)
})

t.test('a delete leaves a tombstone: hidden from reads, counted apart, and older writes cannot revive the key', async (t) => {
  const { store, clock } = clockedStore()
  t.equal(store.set('k', 'v', { version: 100 }), 'stored')
  t.equal(store.deleteVersioned('k', 200), 'deleted')
  t.equal(store.get('k'), undefined)
  t.equal(store.peek('k'), undefined)
  t.equal(store.remainingTtl('k'), -2)
  t.equal(store.size, 0, 'a tombstone is not a key')
  t.equal(store.tombstoneCount, 1)
  t.equal(store.set('k', 'old', { version: 150 }), 'stale', 'a write older than the delete is refused')
  t.equal(store.deleteVersioned('k', 199), 'stale', 'so is an older delete')
  t.equal(store.set('k', 'nx', { condition: 'nx' }), 'stored', 'NX sees the key as absent')
  t.equal(store.deleteVersioned('missing', 300), 'absent', 'a delete of an absent key still remembers its version')
  t.equal(store.set('missing', 'late', { version: 299 }), 'stale')
  clock.now += 60_100
  t.equal(store.sweep(100), 1, 'the tombstone of "missing" expires after tombstoneTtlMs')
  t.equal(store.tombstoneCount, 0)
  t.equal(store.stats.expiredBySweep, 0, 'an expired tombstone is not an expired key')
  t.equal(store.set('missing', 'later', { version: 299 }), 'stored', 'once forgotten, any version applies')
})

t.test('a plain DEL also leaves a tombstone, newer than the value it deletes', async (t) => {
  const { store } = clockedStore()
  store.set('k', 'v')
  const version = entryVersion(store.peek('k')!)
  t.equal(store.delete('k'), true)
  t.equal(store.delete('k'), false, 'a second delete finds nothing')
  t.equal(store.set('k', 'replayed', { version }), 'stale')
})

t.test('dropIfNotNewer removes a key only if nothing newer was written since the eviction it replays', async (t) => {
  const { store } = clockedStore()
  store.set('k', 'v', { version: 10 })
  t.equal(store.dropIfNotNewer('k', 9), false)
  t.equal(store.dropIfNotNewer('k', 10), true)
  t.equal(store.peek('k'), undefined)
  t.equal(store.tombstoneCount, 0, 'an eviction leaves no tombstone')
  t.equal(store.dropIfNotNewer('k', 10), false)
})

t.test('the change listener hears every write, tombstone, eviction and flush', async (t) => {
  const { store } = clockedStore('lru', 4096)
  const heard: string[] = []
  store.changes = {
    written: (key, packed) => heard.push(`write ${key}=${entryValue(packed)}`),
    evicted: (key) => heard.push(`evict ${key}`),
    flushed: () => heard.push('flush'),
  }
  store.set('a', 'x'.repeat(1500))
  store.incrBy('n', 2n)
  store.expire('n', 5000)
  store.delete('n')
  store.set('b', 'y'.repeat(1500))
  store.set('c', 'z'.repeat(1500))
  store.clear()
  t.same(heard.map((line) => line.slice(0, 12)), ['write a=xxxx', 'write n=2', 'write n=2', 'write n=', 'write b=yyyy', 'evict a', 'write c=zzzz', 'flush'])
})

t.test('digest is equal for equal data whatever the order of writes, and differs otherwise', async (t) => {
  const one = clockedStore().store
  const two = clockedStore().store
  one.set('a', '1', { version: 5 })
  one.set('b', '2', { version: 6, flags: 3 })
  two.set('b', '2', { version: 6, flags: 3 })
  two.set('a', '1', { version: 5 })
  two.set('c', 'gone', { version: 7 })
  two.deleteVersioned('c', 8)
  t.same(one.digest(), two.digest(), 'tombstones are not data')
  t.equal(one.digest().items, 2)
  two.set('a', '1', { version: 9 })
  t.not(one.digest().sha1, two.digest().sha1, 'a different version is different data')
})

t.test('versions from elsewhere must be positive and at most maxVersionDriftMs ahead of the clock', async (t) => {
  const { store, clock } = clockedStore()
  const edge = (clock.now + 60_000) * LOGICAL_RANGE
  const refusals: Array<[string, () => unknown]> = []
  for (const version of [0, -1, 1.5, edge + 1, Number.MAX_SAFE_INTEGER, 2 ** 63, Infinity, NaN]) {
    refusals.push(
      [`set ${version}`, () => store.set('k', 'v', { version })],
      [`deleteVersioned ${version}`, () => store.deleteVersioned('k', version)],
      [`dropIfNotNewer ${version}`, () => store.dropIfNotNewer('k', version)],
    )
  }
  refusals.push(['restore from a peer', () => store.restore('k', packEntry('v', { version: edge + 1, expiresAt: 0, flags: 0 }))])
  for (const [what, refused] of refusals) t.throws(refused, { constructor: StoreError, message: /version must be a positive integer|version is too far ahead of this shard's clock/ }, what)
  t.equal(store.peekEntry('k'), undefined, 'nothing refused was stored')
  t.equal(store.set('k', 'edge', { version: edge }), 'stored', 'exactly at the drift is accepted')
  clock.now += 120_000
  store.set('k', 'local')
  t.ok(entryVersion(store.peek('k')!) > edge, 'the clock still moves past what it observed')
})

t.test('no version can pin a key or stop the clock', async (t) => {
  const { store, clock } = clockedStore()
  const shortDrift = new Store({ maxMemory: 1024 * 1024, now: () => clock.now, maxVersionDriftMs: 0 })
  t.throws(() => shortDrift.set('k', 'v', { version: (clock.now + 1) * LOGICAL_RANGE }), /too far ahead/, 'maxVersionDriftMs 0 takes nothing from the future')
  t.throws(() => store.set('k', 'poison', { version: 9007199254740991 }), /too far ahead/)
  store.set('k', 'v')
  clock.now += 1
  t.equal(store.set('k', 'newer', { version: clock.now * LOGICAL_RANGE }), 'stored', 'a router write with a current version applies')
})

t.test('TTLs and expiries the entry header cannot hold are refused, changing nothing', async (t) => {
  const { store, clock } = clockedStore()
  store.set('k', 'v', { ttlMs: 5000 })
  for (const ttlMs of [-1, 1.5, MAX_TTL_MS + 1, 2 ** 53, Infinity, NaN]) {
    t.throws(() => store.set('k', 'w', { ttlMs }), { constructor: StoreError, message: /invalid expire time/ }, `set ttl ${ttlMs}`)
    if (ttlMs > 0) t.throws(() => store.expire('k', ttlMs), { constructor: StoreError, message: /invalid expire time/ }, `expire ${ttlMs}`)
  }
  t.equal(value(store.get('k')), 'v')
  t.equal(store.remainingTtl('k'), 5000, 'the TTL is as it was')
  t.equal(store.set('k', 'max', { ttlMs: MAX_TTL_MS }), 'stored', 'the longest TTL is accepted')
  t.equal(store.remainingTtl('k'), MAX_TTL_MS)
  clock.now = MAX_EXPIRES_AT - 10
  t.throws(() => store.set('late', 'v', { ttlMs: 100 }), /invalid expire time/, 'an expiry past 2^48 ms is refused whatever the TTL')
  t.throws(() => store.set('k', 'v', { flags: 2 ** 32 }), /flags must be an integer/)
})

t.test('a peer entry with the furthest expiry the wire can carry is capped, not a crash', async (t) => {
  const { store, clock } = clockedStore()
  // What a peer's snapshot record holds: the time left, here as large as the field allows.
  const fromPeer = packEntry('v', { version: 1, expiresAt: MAX_EXPIRES_AT, flags: 0 })
  const arrived = rebaseExpiry(fromPeer, 0, clock.now)
  t.equal(entryExpiresAt(arrived), MAX_EXPIRES_AT)
  t.equal(store.restore('k', arrived), 'stored')
  t.equal(value(store.get('k')), 'v')
})

t.test('counters: deltas and stored values outside signed 64 bits are refused', async (t) => {
  const { store } = clockedStore()
  t.throws(() => store.incrBy('c', 2n ** 63n), /overflow/)
  store.set('c', '9999999999999999999')
  t.throws(() => store.incrBy('c', -1n), /not an integer/, 'a 19-digit value past 2^63 is not a counter')
  store.set('c', '-9223372036854775808')
  t.throws(() => store.incrBy('c', -1n), /overflow/)
  t.equal(store.incrBy('c', 2n ** 63n - 1n), -1n)
})

t.test('forget removes a value or a tombstone and leaves nothing behind', async (t) => {
  const { store } = clockedStore()
  store.set('a', 'v', { version: 10 })
  store.deleteVersioned('b', 10)
  t.equal(store.forget('a'), true)
  t.equal(store.forget('b'), true)
  t.equal(store.forget('missing'), false)
  t.equal(store.tombstoneCount, 0)
  t.equal(store.set('b', 'older', { version: 5 }), 'stored', 'the forgotten tombstone no longer blocks older writes')
})

t.test('entries packed one after another keep their own bytes, whatever their sizes', async (t) => {
  const sizes = [0, 5, 1000, 2000, 70 * 1024, 3, 64 * 1024 - ENTRY_HEADER_BYTES, 10]
  const values = sizes.map((size, i) => Buffer.alloc(size, 97 + i))
  const packed = values.map((value, i) => packEntry(i % 2 === 0 ? value : value.toString('latin1'), { version: i + 1, expiresAt: 0, flags: i }))
  packed.forEach((entry, i) => {
    t.equal(entryValue(entry), values[i].toString('latin1'), `value of ${sizes[i]} bytes`)
    t.equal(entryVersion(entry), i + 1)
    t.equal(entryFlags(entry), i)
  })
})
