// A primary that answers -LOADING (still warming up from its replicas) is failed over at once:
// the router knocks it out on the reply and the request goes to the replica.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, startRouterProcess, startShardProcess, type ShardProcess } from '../helpers/processes.ts'

const dir = mkdtempSync(join(tmpdir(), 'shardline-warm-up-'))
const file = (name: string, text: string) => {
  writeFileSync(join(dir, name), text)
  return join(dir, name)
}
// The primary's replica is a port nobody listens on: it stays in warm-up for the whole test.
const primary = await startShardProcess(t, ['--name', 'p', '--replicas', `127.0.0.1:${await freePort()}`, '--config', file('shard.yaml', 'replication:\n  warmupTimeoutMs: 60000\n')])
const replica = await startShardProcess(t, ['--name', 'r'])
const destination = (shard: ShardProcess) => `{ address: 127.0.0.1:${shard.port}, admin: 127.0.0.1:${shard.adminPort} }`
// Heartbeats far apart, so that it is the request itself that meets -LOADING.
const router = await startRouterProcess(t, file('router.yaml', `listen: { data: 127.0.0.1:0, admin: 127.0.0.1:0 }
pools:
  main:
    shards:
      - name: s0
        primary: ${destination(primary)}
        replicas: [${destination(replica)}]
health: { heartbeatMs: 60000 }
`))

t.test('a write meets -LOADING on the primary and lands on the replica', async (t) => {
  const response = await fetch(`${router.url}/k`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value: 'v' }) })
  t.same([response.status, await response.json()], [200, { stored: true }])
  const direct = new Redis({ port: replica.port, host: '127.0.0.1' })
  t.teardown(() => direct.disconnect())
  t.equal(await direct.get('k'), 'v')
  const shards = (await (await fetch(`${router.adminUrl}/admin/shards`)).json()) as { destinations: Array<{ role: string; knockedOut: boolean; lastError: string; replication: { warmingUp: boolean } }> }
  t.match(shards.destinations.find((d) => d.role === 'primary'), { knockedOut: true, lastError: /LOADING/, replication: { warmingUp: true } })
})
