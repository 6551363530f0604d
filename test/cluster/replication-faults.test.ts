// Replication under faults with real processes and writes through the router: kill -9 of a primary (loses
// at most what the measured lag predicts), SIGSTOP of a primary (loses nothing), and network partitions.
import t from 'tap'
import { netnsUnavailableReason } from '../helpers/netns.ts'
import { waitFor } from '../helpers/processes.ts'
import {
  ackedSentSince, checkWrites, percentile, redisCliInHost, sampleReplicationLag, startReplicatedCluster,
  type ReplicatedCluster, type ShardNode, type Verdict, type Writer,
} from '../helpers/replicated-cluster.ts'

t.setTimeout(180_000)

const WRITERS = 4
const KEYS_PER_WRITER = 16

const stopAll = (writers: Writer[]) => Promise.all(writers.map((writer) => writer.stop()))
const knockedOut = async (cluster: ReplicatedCluster, node: ShardNode) => (await cluster.routerView(node)).knockedOut
/** Waits for the router to knock node out; returns when it did, by the router's own clock record. */
const knockedOutSince = (cluster: ReplicatedCluster, node: ShardNode, why: string) =>
  waitFor(async () => {
    const since = (await cluster.routerView(node)).knockedOutSince
    return since !== null && Date.parse(since)
  }, 10_000, () => why)
const summary = (verdict: Verdict) =>
  `${verdict.keys} keys, ${verdict.attempts} writes (${verdict.acked} acknowledged, ${verdict.unknown} unknown, ${verdict.unknownShown} of those shown), ${verdict.lost.length} lost, ${verdict.neverWritten.length} never written`
const lostList = (verdict: Verdict) => JSON.stringify(verdict.lost.slice(0, 10))

/** Waits until n more writes sent after a moment are acknowledged: the cluster takes writes again. */
async function acksAfter(cluster: ReplicatedCluster, writers: Writer[], since: number, n: number, what: string): Promise<void> {
  await waitFor(() => ackedSentSince(writers, since) >= n, 20_000, () => `${what}: only ${ackedSentSince(writers, since)} of ${n} writes acknowledged\n${cluster.outputTails()}`)
}

t.test('kill -9 of a primary under writes: the replica takes over, the primary warms up from it, and only writes in the lag window are lost', async (t) => {
  const cluster = await startReplicatedCluster(t)
  const [pair] = cluster.pairs
  const { primary, replica } = pair
  const writers = cluster.startWriters(WRITERS, KEYS_PER_WRITER, 'kill')
  const lag = sampleReplicationLag(primary)
  const loadStartedAt = Date.now()
  await acksAfter(cluster, writers, loadStartedAt, 1500, 'load before the kill')

  const stopSampling = lag.stop()
  const killedAt = Date.now()
  await primary.kill()
  await stopSampling
  await acksAfter(cluster, writers, killedAt, 300, 'after kill -9 of the primary')
  t.ok(await knockedOut(cluster, primary), 'the router knocked the dead primary out')

  await primary.start()
  await waitFor(() => primary.ready(), 20_000, () => `the restarted primary never became ready\n${cluster.outputTails()}`)
  const warm = await primary.replication()
  t.equal(warm.warmingUp, false, 'warm-up is over once /readyz says ready')
  t.ok((warm.writeBack[0]?.lastFullSync?.records ?? 0) > 0, `the restarted primary warmed up from the replica's snapshot (${JSON.stringify(warm.writeBack[0]?.lastFullSync)})`)
  await waitFor(async () => !(await knockedOut(cluster, primary)), 15_000, () => 'the router never re-admitted the restarted primary')
  const readmittedAt = Date.now()
  await acksAfter(cluster, writers, readmittedAt, 300, 'after the primary was re-admitted')
  await stopAll(writers)

  const digest = await cluster.waitConverged(pair)
  const verdict = await checkWrites(cluster.router, writers)
  const beforeKill = writers.flatMap((writer) => writer.attempts()).filter((attempt) => attempt.acked && attempt.settledAt >= loadStartedAt && attempt.settledAt < killedAt)
  const ratePerSecond = beforeKill.length / ((killedAt - loadStartedAt) / 1000)
  const maxLag = Math.max(0, ...lag.samples)
  // The replica acknowledges at least every heartbeat; a sample can miss a spike shorter than that.
  const slackSeconds = cluster.replicationSettings.heartbeatMs / 1000
  const windowSeconds = maxLag + slackSeconds
  const bound = Math.ceil(ratePerSecond * windowSeconds) + WRITERS
  const takenByReplica = ackedSentSince(writers, killedAt) - ackedSentSince(writers, readmittedAt)
  t.comment(`write rate ${ratePerSecond.toFixed(0)}/s acknowledged before the kill; lag samples ${lag.samples.length}: p50 ${(percentile(lag.samples, 50) * 1000).toFixed(1)} ms, p99 ${(percentile(lag.samples, 99) * 1000).toFixed(1)} ms, max ${(maxLag * 1000).toFixed(1)} ms`)
  t.comment(`lost ${verdict.lost.length} acknowledged writes; predicted bound ${bound} = ceil(${ratePerSecond.toFixed(0)}/s x (${(maxLag * 1000).toFixed(1)} + ${slackSeconds * 1000} ms)) + ${WRITERS} in flight`)
  t.comment(`${summary(verdict)}; ${takenByReplica} writes taken by the replica while the primary was out; converged on ${digest.items} items`)

  t.same(verdict.neverWritten, [], 'no key shows a value that was never written')
  t.same(verdict.lost.filter((attempt) => attempt.sentAt >= killedAt), [], 'every write sent after the kill (taken by the replica) is present after the primary returned')
  t.ok(verdict.lost.length <= bound, `lost writes (${verdict.lost.length}) within the bound the lag predicts (${bound}): ${lostList(verdict)}`)
  const outsideWindow = verdict.lost.filter((attempt) => attempt.settledAt < killedAt - windowSeconds * 1000)
  t.same(outsideWindow, [], `every lost write was acknowledged inside the lag window (${(windowSeconds * 1000).toFixed(0)} ms) before the kill`)
  t.ok(takenByReplica >= 300, 'the replica took writes while the primary was out')
  t.equal((await replica.digest()).sha1, (await primary.digest()).sha1, 'primary and replica hold the same data')
  const roles = Object.fromEntries((await cluster.router.shards()).map((d) => [d.name, (d.replication as { role?: string }).role]))
  t.same(roles, { [primary.destination]: 'primary', [replica.destination]: 'replica' }, "the router's /admin/shards shows each destination's replication state")
})

t.test('SIGSTOP of a primary under writes: knocked out, the replica takes the writes, SIGCONT re-admits it, nothing acknowledged is lost', async (t) => {
  const cluster = await startReplicatedCluster(t)
  const [pair] = cluster.pairs
  const { primary } = pair
  const writers = cluster.startWriters(WRITERS, KEYS_PER_WRITER, 'hang')
  await acksAfter(cluster, writers, 0, 500, 'load before the hang')

  const stoppedAt = Date.now()
  primary.pause()
  const knockedOutAt = await knockedOutSince(cluster, primary, 'the router never knocked out the hung primary')
  await acksAfter(cluster, writers, knockedOutAt, 300, 'while the primary hangs')
  primary.resume()
  const resumedAt = Date.now()
  await waitFor(async () => !(await knockedOut(cluster, primary)), 15_000, () => 'the router never re-admitted the resumed primary')
  const readmittedAt = Date.now()
  await acksAfter(cluster, writers, readmittedAt, 300, 'after the primary was re-admitted')
  await stopAll(writers)

  const digest = await cluster.waitConverged(pair)
  const verdict = await checkWrites(cluster.router, writers)
  t.comment(`knocked out ${knockedOutAt - stoppedAt} ms after SIGSTOP, re-admitted ${readmittedAt - resumedAt} ms after SIGCONT; ${ackedSentSince(writers, knockedOutAt) - ackedSentSince(writers, resumedAt)} writes acknowledged during the hang`)
  t.comment(`${summary(verdict)}; converged on ${digest.items} items`)
  t.same(verdict.neverWritten, [], 'no key shows a value that was never written')
  t.equal(verdict.lost.length, 0, `no acknowledged write lost: ${lostList(verdict)}`)
})

const noNetns = netnsUnavailableReason()
t.test('network partitions between test hosts (netns)', { skip: noNetns ?? false }, async (t) => {
  const cluster = await startReplicatedCluster(t, { netns: true })
  const [pair] = cluster.pairs
  const { primary, replica } = pair
  const network = cluster.network!

  t.test('primary <-> replica cut under writes: the link resyncs after the heal and nothing is lost', async (t) => {
    const writers = cluster.startWriters(WRITERS, KEYS_PER_WRITER, 'cut-pr')
    await acksAfter(cluster, writers, 0, 300, 'load before the cut')
    const cutAt = Date.now()
    await cluster.partition(primary, replica)
    // Held until the primary drops its silent replica (after the replication timeout), so the
    // link has to resync after the heal rather than just retransmit.
    await waitFor(async () => (await primary.replication()).peers.length === 0, 10_000, () => 'the primary never dropped the replica it cannot reach')
    await acksAfter(cluster, writers, cutAt, 200, 'during the cut (the primary takes them)')
    const before = await replica.replication()
    await cluster.heal(primary, replica)
    const healedAt = Date.now()
    await acksAfter(cluster, writers, healedAt, 200, 'after the heal')
    await stopAll(writers)

    const digest = await cluster.waitConverged(pair)
    const after = await replica.replication()
    const verdict = await checkWrites(cluster.router, writers)
    const resyncs = { partial: after.upstream!.partialSyncs - before.upstream!.partialSyncs, full: after.upstream!.fullSyncs - before.upstream!.fullSyncs }
    t.comment(`replica's link after the heal: ${resyncs.partial} partial, ${resyncs.full} full resyncs; converged on ${digest.items} items`)
    t.ok(resyncs.partial + resyncs.full >= 1, 'the replica resynced after the heal')
    t.comment(summary(verdict))
    t.same(verdict.neverWritten, [], 'no key shows a value that was never written')
    t.equal(verdict.lost.length, 0, `no acknowledged write lost: ${lostList(verdict)}`)
  })

  t.test('router <-> primary cut under writes: the replica takes them, they flow back to the primary, nothing is lost', async (t) => {
    const writers = cluster.startWriters(WRITERS, KEYS_PER_WRITER, 'cut-rp')
    await acksAfter(cluster, writers, 0, 300, 'load before the cut')
    const cutAt = Date.now()
    await cluster.partition('router', primary)
    const knockedOutAt = await knockedOutSince(cluster, primary, 'the router never knocked out the primary it cannot reach')
    await acksAfter(cluster, writers, knockedOutAt, 300, 'while the router is cut from the primary')
    await stopAll(writers)

    // Still cut from the router: read the primary from the replica's host. Equal digests mean the
    // replica's writes reached the primary over the write-back link.
    const primaryDigestFromReplicaHost = async () => {
      const [items, sha1] = (await redisCliInHost(network, replica.testHost!, ['-h', primary.host, '-p', String(primary.port), 'SL.DIGEST'])).trim().split('\n')
      return { items: Number(items), sha1 }
    }
    let last: unknown = null
    await waitFor(async () => {
      const [fromPrimary, fromReplica] = await Promise.all([primaryDigestFromReplicaHost(), replica.digest()])
      last = { fromPrimary, fromReplica }
      return fromPrimary.sha1 === fromReplica.sha1
    }, 20_000, () => `the replica's writes never reached the primary while it was cut from the router: ${JSON.stringify(last)}\n${cluster.outputTails()}`)
    const writeBack = (await replica.replication()).peers
    t.ok(writeBack.length > 0, 'the primary pulls from its replica (write-back link up)')

    await cluster.heal('router', primary)
    await waitFor(async () => !(await knockedOut(cluster, primary)), 15_000, () => 'the router never re-admitted the primary after the heal')
    const digest = await cluster.waitConverged(pair)
    const verdict = await checkWrites(cluster.router, writers)
    t.comment(`knocked out ${knockedOutAt - cutAt} ms after the cut; ${ackedSentSince(writers, knockedOutAt)} writes taken by the replica; converged on ${digest.items} items`)
    t.comment(summary(verdict))
    t.same(verdict.neverWritten, [], 'no key shows a value that was never written')
    t.equal(verdict.lost.length, 0, `no acknowledged write lost: ${lostList(verdict)}`)
  })
})
