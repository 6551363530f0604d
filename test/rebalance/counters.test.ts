// Counters and hot-key keys through `shardline rebalance` on real shards: a counter moves or is
// merged with the one its new owner grew since the reload, a sub-counter is added to its home,
// a hot-key copy off its home is dropped.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { copyKey, subCounterKey } from '../../router/routes/hot-key-route.ts'
import { startShardProcess } from '../helpers/processes.ts'
import { runRebalance } from '../helpers/elastic-pool.ts'

const [from, to] = await Promise.all(['from', 'to'].map((name) => startShardProcess(t, ['--name', name], 120_000)))
const file = join(mkdtempSync(join(tmpdir(), 'shardline-rebalance-counters-')), 'router.yaml')
writeFileSync(file, `pools:
  main:
    shards:
      - { name: from, primary: 127.0.0.1:${from.port}, draining: true }
      - { name: to, primary: 127.0.0.1:${to.port} }
`)
const [fromClient, toClient] = [from, to].map((shard) => new Redis({ port: shard.port, host: '127.0.0.1' }))
t.teardown(() => [fromClient, toClient].forEach((client) => client.disconnect()))

t.test('counters, sub-counters and copies found on a draining shard', async (t) => {
  // Both grew from nothing (one epoch): merged writer by writer.
  await fromClient.incrby('same-epoch', 5)
  await toClient.incrby('same-epoch', 3)
  // The old one grew from a SET (a newer epoch than the new owner's counter from nothing): added.
  await fromClient.set('from-a-set', '10')
  await fromClient.incrby('from-a-set', 5)
  await toClient.incrby('from-a-set', 2)
  // Nothing on the new owner: moved as it is.
  await fromClient.incrby('only-old', 4)
  // Derived keys: NUL-tagged, as the router's hot-key route writes them.
  await fromClient.set(Buffer.from(copyKey('hot', 1), 'latin1'), 'copy')
  await fromClient.incrby(Buffer.from(subCounterKey('hot', 0), 'latin1'), 7)

  const run = await runRebalance(t, file)
  t.equal(run.code, 0, run.output)
  t.match(run.summary, { failed: 0, removed: 5 })
  t.equal(await toClient.get('same-epoch'), '8')
  t.equal(await toClient.get('from-a-set'), '17')
  t.equal(await toClient.get('only-old'), '4')
  t.equal(await toClient.get(Buffer.from(subCounterKey('hot', 0), 'latin1')), '7', 'a sub-counter is added to its home')
  t.equal(await toClient.exists(Buffer.from(copyKey('hot', 1), 'latin1')), 0, 'a copy is not moved')
  t.equal(await fromClient.dbsize(), 0, 'the draining shard holds nothing')
})
