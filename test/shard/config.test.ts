// The shard's replication settings as an operator writes them: flags, YAML, a StatefulSet's
// group and member index, and the clear errors for what cannot work.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadShardConfig } from '../../shard/config.ts'

const group = 'a:6380,b:6380,c:6380'

t.test('a standalone shard by default, with the documented replication defaults', async (t) => {
  t.match(loadShardConfig([]).replication, { replicaOf: null, replicas: [], backlogBytes: 32 * 1024 * 1024, maxPeerBufferBytes: 256 * 1024 * 1024, warmupTimeoutMs: 10_000, timeoutMs: 5000, heartbeatMs: 100 })
  t.equal(loadShardConfig([]).tombstoneTtlMs, 60_000)
})

t.test('--replicaof and --replicas make a replica and a primary', async (t) => {
  t.match(loadShardConfig(['--replicaof', '10.0.0.1:6380']).replication, { replicaOf: '10.0.0.1:6380', replicas: [] })
  t.match(loadShardConfig(['--replicas', 'r1:6380,r2:6380']).replication, { replicaOf: null, replicas: ['r1:6380', 'r2:6380'] })
})

t.test('a group member takes its role from its index: 0 is the primary', async (t) => {
  t.match(loadShardConfig(['--group', group, '--member', '0']).replication, { replicaOf: null, replicas: ['b:6380', 'c:6380'] })
  t.match(loadShardConfig(['--group', group, '--member', '2']).replication, { replicaOf: 'a:6380', replicas: [] })
})

t.test('YAML settings, with flags winning', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'shardline-config-')), 'shard.yaml')
  writeFileSync(file, 'replication:\n  replicaOf: p:6380\n  backlogBytes: 1mb\n  timeoutMs: 900\ntombstoneTtlMs: 5000\n')
  const config = loadShardConfig(['--config', file])
  t.match(config.replication, { replicaOf: 'p:6380', backlogBytes: 1024 * 1024, timeoutMs: 900 })
  t.equal(config.tombstoneTtlMs, 5000)
  t.match(loadShardConfig(['--config', file, '--replicaof', 'q:6380']).replication, { replicaOf: 'q:6380', timeoutMs: 900 })
})

t.test('settings that cannot work are refused with a clear error', async (t) => {
  t.throws(() => loadShardConfig(['--replicaof', 'p:1', '--replicas', 'r:1']), /either a replica \(replicaOf\) or a primary with replicas, not both/)
  t.throws(() => loadShardConfig(['--group', group]), /group and member go together/)
  t.throws(() => loadShardConfig(['--group', group, '--member', '3']), /replication.member: 3 is not an index into a group of 3/)
  t.throws(() => loadShardConfig(['--group', group, '--member', 'first']), /member/)
  t.throws(() => loadShardConfig(['--replicaof', 'no-port']), /replicaOf.*host:port/)
})
