// Counters as per-writer components (PN-counters): increments taken by a primary and by its replica
// during a failover all count once merged, in any order, and any number of times; writes supersede.
import t from 'tap'
import fc from 'fast-check'
import { LOGICAL_RANGE } from '../../common/hlc.ts'
import { counterPayload } from '../../shard/counter-entry.ts'
import { entryIsCounter, entryValue, entryVersion, packEntry } from '../../shard/entry.ts'
import { Store, StoreError } from '../../shard/store.ts'
import { waitFor } from '../helpers/processes.ts'
import { converged, startPair } from '../helpers/shard-pair.ts'

const store = (writerId: string, now = () => Date.now()) => new Store({ maxMemory: 1 << 20, writerId, now })
const value = (s: Store, key: string) => {
  const packed = s.get(key)
  return packed === undefined ? undefined : entryValue(packed)
}
/** Ships key's entry from one store to another, as replication and write-back do. */
const ship = (from: Store, to: Store, key: string) => {
  const packed = from.peekEntry(key)
  return packed === undefined ? 'absent' : to.restore(key, packed)
}

t.test('increments on both sides of a failover all count once the two copies merge', async (t) => {
  const [primary, replica] = [store('p'), store('r')]
  primary.incrBy('hits', 10n)
  ship(primary, replica, 'hits')
  // The primary hangs: the router sends increments to the replica; the primary, resuming,
  // applies the ones that were queued on its socket before anything reaches it.
  t.equal(replica.incrBy('hits', 5n), 15n)
  t.equal(primary.incrBy('hits', 3n), 13n)
  t.equal(ship(replica, primary, 'hits'), 'stored')
  t.equal(ship(primary, replica, 'hits'), 'stored')
  t.equal(value(primary, 'hits'), '18')
  t.equal(value(replica, 'hits'), '18')
  t.same(primary.digest(), replica.digest(), 'the two copies are equal')
  t.equal(ship(primary, replica, 'hits'), 'stale', 'merging again changes nothing')
  t.equal(primary.incrBy('hits', -20n), -2n, 'decrements are increments too')
})

t.test('a counter grows from the value, the delete or the nothing before it, and a later write supersedes it', async (t) => {
  const [a, b] = [store('a'), store('b')]
  const version = 1000 * LOGICAL_RANGE * 1_000_000
  a.set('n', '40', { version })
  ship(a, b, 'n')
  a.incrBy('n', 1n)
  b.incrBy('n', 1n)
  const grown = a.peekEntry('n')!
  t.ok(entryIsCounter(grown), 'stored as a counter')
  t.equal(entryVersion(grown), version, "the counter's epoch is the value it grew from")
  ship(a, b, 'n')
  ship(b, a, 'n')
  t.equal(value(b, 'n'), '42', 'both increments on the shared base')

  // A delete of this version: a counter grown from it is what came after, on every side.
  a.deleteVersioned('gone', version)
  ship(a, b, 'gone')
  t.equal(b.incrBy('gone', 7n), 7n)
  t.equal(ship(b, a, 'gone'), 'stored', 'the counter supersedes the delete it grew from')
  t.equal(value(a, 'gone'), '7')

  // A write with a newer version supersedes every component; an older one is refused.
  t.equal(a.set('n', '0', { version: version + 1 }), 'stored')
  t.equal(ship(b, a, 'n'), 'stale', 'the older epoch cannot bring its components back')
  t.equal(ship(a, b, 'n'), 'stored')
  t.equal(value(b, 'n'), '0')
  t.equal(b.set('n', 'x', { version: version - 1 }), 'stale')

  // A counter from nothing is older than any write.
  b.incrBy('fresh', 1n)
  t.equal(b.set('fresh', 'v', { version: 2 }), 'stored')
})

t.test('a restarted shard is a new writer: its earlier component stays counted', async (t) => {
  const [before, replica] = [store('first'), store('r')]
  before.incrBy('c', 4n)
  ship(before, replica, 'c')
  const restarted = store('second')
  ship(replica, restarted, 'c')
  t.equal(restarted.incrBy('c', 1n), 5n)
  ship(restarted, replica, 'c')
  t.equal(value(replica, 'c'), '5')
})

t.test('counters stay exact past 2^53, and a merged sum out of 64 bits is refused on increment', async (t) => {
  const [a, b] = [store('a'), store('b')]
  a.incrBy('big', 2n ** 62n)
  b.incrBy('big', 2n ** 62n - 1n)
  ship(a, b, 'big')
  t.equal(value(b, 'big'), (2n ** 63n - 1n).toString())
  t.throws(() => b.incrBy('big', 1n), /overflow/)
  t.equal(b.incrBy('big', -(2n ** 53n) - 1n), 2n ** 63n - 1n - 2n ** 53n - 1n)
})

t.test('EXPIRE makes a counter a plain value of its sum: later increments grow from it', async (t) => {
  const [a, b] = [store('a'), store('b')]
  a.incrBy('c', 3n)
  t.ok(a.expire('c', 60_000))
  t.notOk(entryIsCounter(a.peekEntry('c')!))
  t.equal(value(a, 'c'), '3')
  ship(a, b, 'c')
  t.equal(b.incrBy('c', 1n), 4n)
  t.ok(b.remainingTtl('c') > 0, 'the TTL stays')
})

t.test('a malformed counter entry from a peer is refused and changes nothing', async (t) => {
  const target = store('t')
  target.incrBy('c', 2n)
  const before = target.digest()
  const version = 1
  const counter = (payload: string, meta: { tombstone?: boolean } = {}) => packEntry(payload, { version, expiresAt: 0, flags: 0, counter: true, ...meta })
  const components = (entries: Array<[string, bigint, number]>) => ({ base: 0n, components: new Map(entries.map(([w, v, ver]) => [w, { value: v, version: ver }])) })
  const now = Date.now() * LOGICAL_RANGE
  const bad: Record<string, string> = {
    'a sum that is not the sum': counter('5\n0\nx 4 1'),
    'no base': counter('5'),
    'a writer twice': counter('2\n0\nx 1 1\nx 1 2'),
    'a writer with a space': counter('1\n0\nx y 1 1'),
    'a component version past the drift bound': counter(counterPayload(components([['x', 1n, now + 3_600_000 * LOGICAL_RANGE]]))),
    'a version of 0': counter('1\n0\nx 1 0'),
    'a non-canonical number': counter('01\n0\nx 01 1'),
    'a tombstone marked as a counter': counter('', { tombstone: true }),
    'text': counter('hello'),
  }
  for (const [what, packed] of Object.entries(bad)) {
    const refusal = (() => {
      try {
        return target.restore('c', packed)
      } catch (error) {
        return error
      }
    })()
    t.ok(refusal instanceof StoreError, `${what}: ${String(refusal)}`)
  }
  t.same(target.digest(), before)
  t.equal(target.restore('c', counter(counterPayload(components([['x', 1n, now]])))), 'stored', 'a well-formed one merges')
  t.equal(value(target, 'c'), '3')
})

t.test('property: any increments on three shards, merged in any order, converge on their total', async (t) => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('incr' as const), at: fc.nat(2), key: fc.nat(1), by: fc.bigInt(-1000n, 1000n) }),
    fc.record({ kind: fc.constant('ship' as const), from: fc.nat(2), to: fc.nat(2), key: fc.nat(1) }),
  )
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    // One clock that moves on, as real time does between ops.
    let ms = 1_700_000_000_000
    const stores = ['a', 'b', 'c'].map((name) => store(name, () => ms++))
    const totals = [0n, 0n]
    for (const step of ops) {
      if (step.kind === 'incr') {
        stores[step.at].incrBy(`k${step.key}`, step.by)
        totals[step.key] += step.by
      } else {
        ship(stores[step.from], stores[step.to], `k${step.key}`)
      }
    }
    // Then every copy reaches every shard.
    for (let round = 0; round < 2; round++) {
      for (const from of stores) for (const to of stores) for (const key of [0, 1]) ship(from, to, `k${key}`)
    }
    for (const [key, total] of totals.entries()) {
      for (const s of stores) {
        const read = value(s, `k${key}`)
        if (read !== (read === undefined && total === 0n ? undefined : total.toString())) throw new Error(`k${key}: ${read} on a shard, total ${total}`)
      }
    }
    const digests = new Set(stores.map((s) => s.digest().sha1))
    if (digests.size !== 1) throw new Error('the shards hold different data')
  }), { numRuns: 300 })
  t.pass('300 random histories converged')
})

t.test('real shards: increments the replica took while its primary was paused survive the resume', async (t) => {
  const pair = await startPair(t)
  const [p, r] = [pair.client(pair.primary), pair.client(pair.replica)]
  await p.incrby('views', 100)
  await waitFor(async () => (await r.get('views')) === '100', 10_000, () => 'the replica to have the first increments')
  pair.primary.child.kill('SIGSTOP')
  try {
    // What a router does with the primary knocked out: the replica takes the increments.
    for (let i = 0; i < 20; i++) await r.incrby('views', 1)
  } finally {
    pair.primary.child.kill('SIGCONT')
  }
  // An increment on the resumed primary, on top of its pre-pause count: once a last-writer-wins
  // value, it would win over the replica's 120 and lose those 20.
  await waitFor(async () => {
    try {
      await p.incrby('views', 1)
      return true
    } catch {
      return false // -LOADING while the primary catches up with its replica
    }
  }, 10_000, () => 'the resumed primary to take an increment')
  await converged(p, r)
  t.equal(await p.get('views'), '121')
  t.equal(await r.get('views'), '121')
})

t.test('real shards: increments taken by a primary and its replica at once (routers that disagree on the primary) all count', async (t) => {
  const pair = await startPair(t)
  const [p, r] = [pair.client(pair.primary), pair.client(pair.replica)]
  // Interleaved, so that each side's increments land on top of copies the other keeps replacing:
  // as last-writer-wins values, each side's newer write would drop the other's.
  await Promise.all([p, r].map(async (client) => {
    for (let i = 0; i < 200; i++) await client.incrby('shared', 1)
  }))
  await converged(p, r)
  t.equal(await p.get('shared'), '400')
  t.equal(await r.get('shared'), '400')
})

t.test('real shards: SL.GETV marks a counter (a fifth element), so a router moving keys never copies its sum as a value', async (t) => {
  const pair = await startPair(t)
  const p = pair.client(pair.primary)
  await p.set('plain', '5')
  await p.incrby('views', 3)
  await p.set('grown', '10')
  await p.incrby('grown', 1)
  t.equal(((await p.call('SL.GETV', 'plain')) as unknown[]).length, 4, 'a value: [value, version, flags, pttl]')
  t.match(await p.call('SL.GETV', 'views'), ['3', 1, 0, -1, 1], 'a counter from nothing: epoch 1, marked')
  t.match(await p.call('SL.GETV', 'grown'), ['11', Number, 0, -1, 1], 'a counter grown from a value: marked too')
})
