// Which keys the rebalance job moves, and how: a key moves when its home under the config's ring
// is not the shard holding it; off its home a value or a tombstone moves, a counter merges, a
// sub-counter is added, a hot-key copy is dropped, an expired entry is left; draining shards own nothing.
import t from 'tap'
import { parseRouterConfig } from '../../router/config.ts'
import { copyKey, subCounterKey } from '../../router/routes/hot-key-route.ts'
import { derivedKeyHome, poolRing } from '../../router/pool-layout.ts'
import { PoolPlacement } from '../../rebalance/placement.ts'
import { packEntry } from '../../shard/entry.ts'

const POINTS = 200
function pool(shards: Array<{ name: string; draining?: boolean }>) {
  const yaml = `pools:\n  main:\n    shards:\n${shards.map((shard, i) => `      - { name: ${shard.name}, primary: 127.0.0.1:${7000 + i}${shard.draining ? ', draining: true' : ''} }`).join('\n')}\n`
  return parseRouterConfig(yaml, 'test.yaml').pools.main
}
const value = packEntry('v', { version: 5, expiresAt: 0, flags: 0 })
const tombstone = packEntry('', { version: 5, expiresAt: 0, flags: 0, tombstone: true })
const counter = packEntry('3\n0\nw 3 9', { version: 1, expiresAt: 0, flags: 0, counter: true })
/** What an entry past its expiry looks like in SL.SCAN's time-left form. */
const expired = packEntry('v', { version: 5, expiresAt: 1, flags: 0 })
const withTimeLeft = packEntry('v', { version: 5, expiresAt: 60_000, flags: 0 })
const keys = Array.from({ length: 2000 }, (_, i) => `key:${i}`)

t.test('3 -> 4 shards: the keys the new ring gives the new shard are off their home, no other key is', async (t) => {
  const before = poolRing(pool([{ name: 's0' }, { name: 's1' }, { name: 's2' }]), POINTS)
  const placement = new PoolPlacement(pool([{ name: 's0' }, { name: 's1' }, { name: 's2' }, { name: 's3' }]), POINTS)
  const moving = keys.filter((key) => placement.home(key) !== before.lookup(key))
  t.ok(moving.every((key) => placement.home(key) === 's3'), 'every key that moves goes to s3')
  t.ok(moving.length > keys.length * 0.18 && moving.length < keys.length * 0.32, `about a quarter move: ${moving.length} of ${keys.length}`)
})

t.test('a draining shard is home to nothing', async (t) => {
  const placement = new PoolPlacement(pool([{ name: 's0' }, { name: 's1', draining: true }, { name: 's2' }]), POINTS)
  t.notOk(keys.some((key) => placement.home(key) === 's1'))
  t.same(placement.ring.nodes, ['s0', 's2'])
})

t.test('off its home, each kind of entry gets its own action', async (t) => {
  const placement = new PoolPlacement(pool([{ name: 's0' }, { name: 's1' }, { name: 's2' }]), POINTS)
  const hotKeys = pool([{ name: 's0' }]).hotKeys
  const key = keys[0]
  t.equal(placement.offHomeAction(key, value), 'move', 'a value moves')
  t.equal(placement.offHomeAction(key, withTimeLeft), 'move', 'a value with time left moves')
  t.equal(placement.offHomeAction(key, tombstone), 'move', 'a tombstone moves: a delete through an old-config router must reach the new owner')
  t.equal(placement.offHomeAction(key, counter), 'merge-counter')
  t.equal(placement.offHomeAction(key, expired), 'expired')
  for (let index = 0; index < 3; index++) {
    t.equal(placement.offHomeAction(copyKey(key, index), value), 'drop', 'a hot-key copy is dropped')
    t.equal(placement.offHomeAction(subCounterKey(key, index), counter), 'add', 'a sub-counter is added to its home')
    for (const derived of [copyKey(key, index), subCounterKey(key, index)]) {
      t.equal(placement.home(derived), derivedKeyHome(placement.ring, derived, hotKeys), 'a derived key\'s home is where the hot-key route puts it')
    }
  }
})
