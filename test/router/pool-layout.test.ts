// A pool's layout: draining shards own no keys, and derivedKeyHome places a hot-key copy or a
// sub-counter where the hot-key route writes it, whatever the settings were when it was written.
import t from 'tap'
import { parseRouterConfig } from '../../router/config.ts'
import { derivedKeyHome, owningShards, poolRing } from '../../router/pool-layout.ts'
import { copyKey, derivedKeyShards, subCounterKey } from '../../router/routes/hot-key-route.ts'

const config = parseRouterConfig(`pools:
  main:
    hotKeys: { copies: 3, counterShards: 5 }
    shards:
      - { name: s0, primary: 127.0.0.1:7000 }
      - { name: s1, primary: 127.0.0.1:7001, draining: true }
      - { name: s2, primary: 127.0.0.1:7002 }
      - { name: s3, primary: 127.0.0.1:7003 }
`, 'r.yaml')
const pool = config.pools.main
const ring = poolRing(pool, 500)

t.test('draining shards own no keys', async (t) => {
  t.same(owningShards(pool), ['s0', 's2', 's3'])
  t.same(ring.nodes, ['s0', 's2', 's3'])
  t.equal(Array.from({ length: 2000 }, (_, i) => ring.lookup(`k${i}`)).filter((shard) => shard === 's1').length, 0)
})

t.test('a derived key\'s home is where the hot-key route puts it; a user key has none', async (t) => {
  const keys = Array.from({ length: 300 }, (_, i) => `user:${i}`)
  const placed = (count: number, derive: (key: string, index: number) => string) => keys.map((key) => Array.from({ length: count }, (_, index) => derivedKeyHome(ring, derive(key, index), pool.hotKeys)))
  const routed = (count: number) => keys.map((key) => derivedKeyShards(ring.lookupDistinct(key, count), count))
  t.same(placed(pool.hotKeys.copies, copyKey), routed(pool.hotKeys.copies), 'copies')
  t.same(placed(pool.hotKeys.counterShards, subCounterKey), routed(pool.hotKeys.counterShards), 'sub-counters')
  t.same(placed(8, subCounterKey), routed(8), 'sub-counters written when counterShards was 8 keep their homes')
  t.ok(keys.every((key) => derivedKeyHome(ring, key, pool.hotKeys) === null), 'a user key is not derived')
  t.equal(derivedKeyHome(ring, 'a\u0000x1', pool.hotKeys), null, 'an unknown tag')
  t.equal(derivedKeyHome(ring, 'a\u0000h', pool.hotKeys), null, 'no index')
})
