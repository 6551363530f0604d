// Replication between real shard processes: every kind of write reaches the replica, a replica
// that was away resumes from the backlog or takes a snapshot, failover writes flow back to the
// primary, an empty primary warms up before it answers, bad peers are dropped, and what a store
// refuses from a peer is skipped.
import t from 'tap'
import net from 'node:net'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import { LOGICAL_RANGE } from '../../common/hlc.ts'
import { RespWriter } from '../../common/resp-writer.ts'
import { packEntry } from '../../shard/entry.ts'
import { FULLSYNC, SET_VERSIONED, SNAPSHOT_DONE, command, writeSnapshotBatch } from '../../shard/replication-wire.ts'
import { freePort, startShardProcess, waitFor } from '../helpers/processes.ts'
import { FAST, configFile, converged, digest, startPair, stats } from '../helpers/shard-pair.ts'

t.test('every kind of write reaches the replica, and both ends report the link', async (t) => {
  const pair = await startPair(t)
  const [p, r] = [pair.client(pair.primary), pair.client(pair.replica)]
  await p.set('plain', 'v')
  await p.set('ttl', 'v', 'PX', 60_000)
  await p.mset('m1', '1', 'm2', '2')
  await p.incrby('counter', 5)
  await p.set('expiring', 'v')
  await p.expire('expiring', 100)
  await p.set('deleted', 'v')
  await p.del('deleted')
  await p.call('SL.SETV', 'versioned', 'new', '900000000000000', 'FLAGS', '1')
  await p.call('SL.SETV', 'versioned', 'older', '800000000000000')
  await p.call('SL.DELV', 'never', '5')
  await p.set('binary', Buffer.from([0, 13, 10, 255]))
  const [items] = await converged(p, r)
  t.equal(items, 8)
  t.equal(await r.get('plain'), 'v')
  t.ok((await r.pttl('ttl')) > 50_000, 'a TTL travels as the time it has left')
  t.ok((await r.ttl('expiring')) > 90, 'so does an EXPIRE')
  t.equal(await r.get('counter'), '5')
  t.equal(await r.get('deleted'), null)
  t.same(await r.call('SL.GETV', 'versioned'), ['new', 900000000000000, 1, -1], 'the newest version won on both')
  t.same(await r.getBuffer('binary'), Buffer.from([0, 13, 10, 255]))
  t.equal(await r.call('SL.SETV', 'deleted', 'revived', '1'), 0, 'the replica holds the tombstone: an old write cannot revive the key')

  await p.flushall()
  t.same(await converged(p, r), [0, createHash('sha1').digest('hex')], 'FLUSHALL replicates')

  const primaryState = await stats(pair.primary)
  t.equal(primaryState.role, 'primary')
  t.match(primaryState.peers, [{ peer: /^r@127\.0\.0\.1:\d+$/, state: 'streaming', lag: { ops: Number, bytes: Number, seconds: Number } }])
  t.equal(primaryState.served.fullSyncs, 1)
  const replicaState = await stats(pair.replica)
  t.equal(replicaState.role, 'replica')
  t.match(replicaState.upstream, { direction: 'upstream', state: 'streaming', offset: primaryState.offset, fullSyncs: 1 })
  t.match(await p.info('replication'), /role:master\r\nconnected_slaves:1\r\nslave0:name=r@127\.0\.0\.1:\d+,state=streaming/, 'INFO replication, as Redis tools read it')
  t.match(await r.info('replication'), /role:slave\r\nmaster_host_port:127\.0\.0\.1:\d+\r\nmaster_link_status:up/)
  const metrics = await (await fetch(`${pair.primary.adminUrl}/metrics`)).text()
  t.match(metrics, /shardline_replication_lag_seconds\{peer="r@127\.0\.0\.1:\d+",link="to_replica",shard="p"\} \d/)
  t.match(metrics, /shardline_replication_syncs_total\{kind="full",side="served",shard="p"\} 1/)
  // The replica's lag is what the primary's last heartbeat said it had not acknowledged: the next
  // heartbeat after the data converged says 0 (on a busy machine, not necessarily the one before).
  const caughtUp = /shardline_replication_lag_operations\{peer="127\.0\.0\.1:\d+",link="from_primary",shard="r"\} 0\n/
  await waitFor(async () => caughtUp.test(await (await fetch(`${pair.replica.adminUrl}/metrics`)).text()), 5000, () => 'the replica to report no lag from its primary')
  t.pass('the replica reports no lag from its primary')
})

t.test('a replica that was away resumes from the backlog, or takes a snapshot once the backlog moved on', async (t) => {
  const pair = await startPair(t, `${FAST}  backlogBytes: 64kb\n  maxPeerBufferBytes: 1mb\ntombstoneTtlMs: 300\n`)
  const [p, r] = [pair.client(pair.primary), pair.client(pair.replica)]
  await converged(p, r)
  const drops = async () => Object.values((await stats(pair.primary)).served.dropped as Record<string, number>).reduce((sum, n) => sum + n, 0)
  const awayWhile = async (write: () => Promise<unknown>) => {
    const dropped = await drops()
    pair.replica.child.kill('SIGSTOP')
    await write()
    await waitFor(async () => (await drops()) > dropped, 10_000, () => `the primary to drop the stopped replica:\n${pair.primary.output().slice(-3000)}`)
    pair.replica.child.kill('SIGCONT')
    return converged(p, r, 30_000)
  }
  t.teardown(() => pair.replica.child.kill('SIGCONT'))
  const small = await awayWhile(() => Promise.all(Array.from({ length: 100 }, (_, i) => p.set(`small:${i}`, 'x'))))
  t.equal(small[0], 100)
  // The writes may reach the replica from its socket's buffer before it notices the drop and
  // reconnects (later still on a busy machine): wait for the resync itself.
  await waitFor(async () => (await stats(pair.replica)).upstream.partialSyncs > 0, 10_000, () => 'the replica to resync after the drop')
  t.match((await stats(pair.replica)).upstream, { fullSyncs: 1, partialSyncs: 1 }, '100 small writes fit in the backlog: a partial resync')
  t.ok(await waitFor(() => /dropping replication peer: no acknowledgement for \d+ ms/.test(pair.primary.output()), 5000))
  // 20 MB overflows the socket buffers, then the 1 MB peer buffer, and the 64 kB backlog. Ten
  // deletes whose tombstones expire before the replica is back reach it only as absent keys.
  const value = 'y'.repeat(1000)
  const large = await awayWhile(async () => {
    for (let batch = 0; batch < 20; batch++) await Promise.all(Array.from({ length: 1000 }, (_, i) => p.set(`large:${batch}:${i}`, value)))
    await p.del(...Array.from({ length: 10 }, (_, i) => `small:${i}`))
    await waitFor(async () => (await (await fetch(`${pair.primary.adminUrl}/stats`)).json()).tombstones === 0, 10_000, () => 'the primary to forget its tombstones')
  })
  t.equal(large[0], 20_090, 'the replica dropped the keys the snapshot lacked')
  t.ok(await waitFor(() => /"removed":10,"msg":"after the full resync, removed keys the primary no longer holds"/.test(pair.replica.output()), 5000))
  t.match((await stats(pair.replica)).upstream, { fullSyncs: 2, partialSyncs: 1 }, 'the ops it missed left the backlog: a full resync')
  // Which comes first, the 1 MB peer buffer or the timeout, depends on this machine's load.
  t.ok(await waitFor(() => /dropping replication peer: (\d+ bytes are waiting for it to read|no acknowledgement for \d+ ms)/.test(pair.primary.output()), 5000))
})

t.test('after a full resync a replica keeps the writes it took that its primary has not seen', async (t) => {
  // A primary without --replicas never pulls its replica's writes back: they stay unacknowledged.
  const primaryPort = await freePort()
  const config = configFile(`${FAST}  backlogBytes: 64kb\n  maxPeerBufferBytes: 1mb\n`)
  const primary = await startShardProcess(t, ['--name', 'p', '--port', String(primaryPort), '--config', config])
  const replica = await startShardProcess(t, ['--name', 'r', '--replicaof', `127.0.0.1:${primaryPort}`, '--config', config])
  await waitFor(async () => (await stats(replica)).upstream.state === 'streaming', 10_000)
  const [p, r] = [new Redis({ port: primary.port, host: '127.0.0.1' }), new Redis({ port: replica.port, host: '127.0.0.1' })]
  t.teardown(() => [p, r].forEach((client) => client.disconnect()))
  t.equal(await r.call('SL.SETV', 'failover-write', 'kept', '900000000000000'), 1)
  replica.child.kill('SIGSTOP')
  t.teardown(() => replica.child.kill('SIGCONT'))
  const value = 'z'.repeat(1000)
  for (let batch = 0; batch < 20; batch++) await Promise.all(Array.from({ length: 1000 }, (_, i) => p.set(`fill:${batch}:${i}`, value)))
  await waitFor(async () => (await stats(primary)).peers.length === 0, 10_000, () => 'the primary to drop the stopped replica')
  replica.child.kill('SIGCONT')
  await waitFor(async () => (await stats(replica)).upstream.fullSyncs === 2 && (await stats(replica)).upstream.state === 'streaming', 30_000, () => 'a second full resync')
  t.equal(await r.get('failover-write'), 'kept', 'the replica\'s own unacknowledged write survived the full resync')
  t.equal(await r.dbsize(), 20_001)
})

t.test('writes a replica took while its primary hung flow back to the primary; versions decide', async (t) => {
  const pair = await startPair(t)
  const [p, r] = [pair.client(pair.primary), pair.client(pair.replica)]
  await p.call('SL.SETV', 'shared', 'from-primary', '500')
  await converged(p, r)
  pair.primary.child.kill('SIGSTOP')
  t.teardown(() => pair.primary.child.kill('SIGCONT'))
  // What a router does when it fails the primary over: versioned writes to the replica.
  t.equal(await r.call('SL.SETV', 'failover', 'taken-by-replica', '600'), 1)
  t.equal(await r.call('SL.SETV', 'shared', 'stale-router', '400'), 0, 'an older version loses on the replica too')
  t.equal(await r.call('SL.DELV', 'gone', '700'), 0)
  pair.primary.child.kill('SIGCONT')
  await converged(p, r)
  t.same(await p.call('SL.GETV', 'failover'), ['taken-by-replica', 600, 0, -1])
  t.equal(await p.get('shared'), 'from-primary')
  t.equal(await p.call('SL.SETV', 'gone', 'older', '650'), 0, 'the replica\'s tombstone reached the primary')
})

t.test('an empty primary warms up from its replica before it answers', async (t) => {
  const pair = await startPair(t)
  const [p, r] = [pair.client(pair.primary), pair.client(pair.replica)]
  await Promise.all(Array.from({ length: 2000 }, (_, i) => p.set(`warm:${i}`, 'v'.repeat(50))))
  const [items, sha1] = await converged(p, r)
  await pair.primary.stop('SIGKILL')
  const startedAt = Date.now()
  const restarted = await startShardProcess(t, pair.primaryArgs)
  const readyAt = await waitFor(async () => (await fetch(`${restarted.adminUrl}/readyz`)).status === 200 && Date.now(), 10_000)
  const fresh = pair.client(restarted)
  t.same(await digest(fresh), [items, sha1], 'ready means every key is back')
  // The log line may still be on its way through the pipe when /readyz already answers.
  await waitFor(() => /warm-up done: ready/.test(restarted.output()), 5000, () => 'the warm-up log line')
  t.comment(`the restarted primary was ready with ${items} keys ${readyAt - startedAt} ms after it was started`)
  t.equal((await stats(restarted)).warmingUp, false)
})

t.test('a primary whose replicas do not answer says -LOADING, then serves after warmupTimeoutMs', async (t) => {
  const nobody = await freePort()
  const shard = await startShardProcess(t, ['--replicas', `127.0.0.1:${nobody}`, '--config', configFile(`${FAST}  warmupTimeoutMs: 1500\n`)])
  const redis = new Redis({ port: shard.port, host: '127.0.0.1', maxRetriesPerRequest: 0, enableReadyCheck: false })
  t.teardown(() => redis.disconnect())
  await t.rejects(redis.get('k'), /LOADING shardline shard is warming up/)
  await t.rejects(redis.ping(), /LOADING/, 'a router heartbeat fails, so routers send its keys to a replica')
  t.equal((await fetch(`${shard.adminUrl}/readyz`)).status, 503)
  t.match(await redis.info('persistence'), /loading:1/, 'INFO answers, with loading:1 as Redis says it')
  await waitFor(async () => (await redis.ping().catch(() => null)) === 'PONG', 10_000)
  t.equal((await fetch(`${shard.adminUrl}/readyz`)).status, 200)
  t.match(shard.output(), /warm-up gave up: no replica answered in time/)
})

t.test('bad peers are dropped with a clear log line, and the shard keeps serving', async (t) => {
  const pair = await startPair(t)
  const p = pair.client(pair.primary)
  await p.set('k', 'v')
  const peer = net.connect({ port: pair.primary.port, host: '127.0.0.1' })
  await once(peer, 'connect')
  peer.write('*4\r\n$7\r\nSL.SYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n$4\r\nevil\r\n')
  peer.resume()
  peer.write('*2\r\n$3\r\nGET\r\n$1\r\nk\r\n')
  await once(peer, 'close')
  const dropLine = /"peer":"evil".*dropping replication peer: it sent \[\\"GET\\",\\"k\\"\] where only \\"SL.ACK <offset>\\" belongs/
  t.ok(await waitFor(() => dropLine.test(pair.primary.output()), 5000), 'the primary says which peer it dropped and why')
  t.equal(await p.get('k'), 'v')
  await t.rejects(p.call('SL.SYNC', 'x'), /wrong number of arguments/)
  await t.rejects(p.call('SL.SYNC', 'x', 'y'), /offset must be an integer/)

  // A "primary" that speaks something else: the replica drops the link, says why, reconnects.
  const fake = net.createServer((socket) => socket.end('+OK I am not a shard\r\n'))
  fake.listen(0, '127.0.0.1')
  await once(fake, 'listening')
  t.teardown(() => fake.close())
  let connections = 0
  fake.on('connection', () => connections++)
  const replica = await startShardProcess(t, ['--replicaof', `127.0.0.1:${(fake.address() as net.AddressInfo).port}`])
  await waitFor(() => connections >= 2, 10_000, () => 'the replica to reconnect')
  t.ok(await waitFor(() => /replication link dropped: the peer sent something that is not replication/.test(replica.output()), 5000))
  const client = pair.client(replica)
  t.equal(await client.set('still', 'serving'), 'OK')
})

t.test('a replica skips what its store refuses from a primary (a version past its clock, a TTL past the limit) and keeps streaming', async (t) => {
  const version = () => String(Date.now() * LOGICAL_RANGE)
  const poisoned = packEntry('snapshot value', { version: Number.MAX_SAFE_INTEGER, expiresAt: 0, flags: 0 })
  const fake = net.createServer((socket) => {
    socket.on('error', () => {})
    socket.once('data', () => {
      const writer = new RespWriter()
      command(writer, FULLSYNC, ['fake-replid', '0'])
      writeSnapshotBatch(writer, ['from-snapshot', poisoned], Date.now())
      command(writer, SNAPSHOT_DONE, ['1'])
      command(writer, SET_VERSIONED, ['ahead', 'v', '9007199254740991'])
      command(writer, SET_VERSIONED, ['forever', 'v', version(), 'PX', '999999999999999'])
      command(writer, SET_VERSIONED, ['good', 'applied', version()])
      writer.writeTo(socket)
    })
  })
  fake.listen(0, '127.0.0.1')
  await once(fake, 'listening')
  t.teardown(() => fake.close())
  const replica = await startShardProcess(t, ['--replicaof', `127.0.0.1:${(fake.address() as net.AddressInfo).port}`, '--config', configFile(FAST)])
  const client = new Redis({ port: replica.port, host: '127.0.0.1' })
  t.teardown(() => client.disconnect())
  await waitFor(async () => (await client.get('good')) === 'applied', 10_000, () => `the op after the refused ones to apply:\n${replica.output()}`)
  t.same(await client.mget('from-snapshot', 'ahead', 'forever'), [null, null, null], 'nothing the store refused was stored')
  const upstream = (await (await fetch(`${replica.adminUrl}/stats`)).json()).replication.upstream
  t.match(upstream, { refused: 3, opsApplied: 3, state: 'streaming' }, 'refused ops are counted, and still advance the offset')
  t.equal(replica.output().split('\n').filter((line) => line.includes('skipped what the peer sent that this store refuses')).length, 1, 'logged once for the burst')
  t.equal(replica.child.exitCode, null, 'the replica is up')
})
