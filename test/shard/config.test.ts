// The shard's settings as an operator writes them: replication flags, YAML, a StatefulSet's group
// and member index, the client limits and version drift, and the clear errors for what cannot work.
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

t.test('client limits and the version drift have documented defaults and ranges', async (t) => {
  const config = loadShardConfig([])
  t.match(config.limits, { maxOutputBufferBytes: 8 * 1024 * 1024, maxQueryBufferBytes: 8 * 1024 * 1024, maxClientsMemory: 32 * 1024 * 1024, maxClients: 10_000, slowClientTimeoutMs: 10_000, idleTimeoutMs: 0 })
  t.equal(config.maxVersionDriftMs, 60_000)
  const file = join(mkdtempSync(join(tmpdir(), 'shardline-config-')), 'shard.yaml')
  writeFileSync(file, 'maxVersionDriftMs: 5000\nlimits:\n  maxClients: 3\n  idleTimeoutMs: 30000\n')
  t.match(loadShardConfig(['--config', file]), { maxVersionDriftMs: 5000, limits: { maxClients: 3, idleTimeoutMs: 30_000 } })
  writeFileSync(file, 'limits:\n  maxValueBytes: 16777216\n')
  t.throws(() => loadShardConfig(['--config', file]), /limits.maxQueryBufferBytes: 8388608 is below limits.maxValueBytes \+ 64 KiB \(16842752\)/, 'a max-size value must fit in the query buffer')
  writeFileSync(file, 'limits:\n  maxValueBytes: 16777216\n  maxQueryBufferBytes: 16842752\n')
  t.equal(loadShardConfig(['--config', file]).limits.maxQueryBufferBytes, 16_842_752)
  writeFileSync(file, 'limits:\n  maxClients: 0\n  slowClientTimeoutMs: 10\n  idleTimeoutMs: -1\nmaxVersionDriftMs: -5\n')
  t.throws(() => loadShardConfig(['--config', file]), /maxClients: must be >= 1[\s\S]*slowClientTimeoutMs: must be >= 100[\s\S]*idleTimeoutMs: must be >= 0[\s\S]*maxVersionDriftMs: must be >= 0/)
})
