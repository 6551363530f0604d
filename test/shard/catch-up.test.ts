// A primary back from a hang serves only once it holds what its replica took meanwhile: -LOADING
// (PING included) until its write-back link passed a barrier, never its own older values; bounded
// by catchUp.timeoutMs, with no wait at all for a replica already dead or hung; a stall shorter
// than catchUp.stallMs costs nothing.
import t from 'tap'
import { setTimeout as delay } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { waitFor, type ShardProcess, type Teardown } from '../helpers/processes.ts'
import { converged, startPair as startShardPair, stats, type Pair } from '../helpers/shard-pair.ts'

const KEYS = Array.from({ length: 40 }, (_, i) => `key:${i}`)

/** A pair whose clients see each reply as the shard sent it: no ready check to wait out -LOADING. */
async function startPair(t: Teardown, yaml: string): Promise<Pair> {
  const pair = await startShardPair(t, yaml)
  return { ...pair, client: (shard) => pair.client(shard, { readyCheck: false }) }
}

/** Waits for a log line: it may still be in the pipe when the answer it explains has come. */
const logged = (shard: ShardProcess, line: RegExp) => waitFor(() => line.test(shard.output()), 5000, () => `the log line ${line}`)
const metrics = async (shard: ShardProcess) => (await fetch(`${shard.adminUrl}/metrics`)).text()
const catchUps = async (shard: ShardProcess, outcome: string) => Number(new RegExp(`shardline_replication_catch_ups_total\\{outcome="${outcome}",shard="p"\\} (\\d+)`).exec(await metrics(shard))?.[1])

/** A reply as the client saw it: the value, or the error's text. */
const answer = (reply: Promise<string | null>) => reply.then((value) => ({ value }), (error: Error) => ({ error: error.message }))
type Answer = Awaited<ReturnType<typeof answer>>

async function writeAll(redis: Redis, value: string): Promise<void> {
  await redis.mset(...KEYS.flatMap((key) => [key, value]))
}


/**
 * Hangs the primary (SIGSTOP) while the replica takes new values for every key, as it does when
 * routers fail over; GETs sent to the hung primary wait in its socket. holdWhile decides how long
 * the hang lasts. Resumes it, then reads every key in a tight loop on a fresh connection until
 * each shows the new value. Returns the answers (the ones that waited, and the loop's) and a summary.
 */
async function hangWhileReplicaTakesWrites(pair: Pair, holdWhile: () => Promise<unknown>) {
  const waiting = pair.client(pair.primary)
  await waiting.ping()
  pair.primary.child.kill('SIGSTOP')
  const queued = [...KEYS.map((key) => answer(waiting.get(key))), answer(waiting.ping())]
  await writeAll(pair.client(pair.replica), 'new')
  await holdWhile()
  pair.primary.child.kill('SIGCONT')
  const resumedAt = Date.now()
  const reader = pair.client(pair.primary)
  const loop: Answer[] = []
  const fresh = new Set<string>()
  let newAfterMs = 0
  await waitFor(async () => {
    for (const key of KEYS) {
      const reply = await answer(reader.get(key))
      loop.push(reply)
      if ('value' in reply && reply.value === 'new') fresh.add(key)
    }
    newAfterMs = Date.now() - resumedAt
    return fresh.size === KEYS.length
  }, 10_000, () => `every key to read "new" on the resumed primary; ${fresh.size} of ${KEYS.length} did\n${pair.primary.output().slice(-3000)}`)
  const { last } = (await stats(pair.primary)).catchUp
  const summary = `catch-up ${JSON.stringify(last)}; ${loop.filter((reply) => 'error' in reply).length} of ${loop.length} reads after SIGCONT answered -LOADING; every key read "new" ${newAfterMs} ms after SIGCONT`
  return { queued: await Promise.all(queued), loop, newAfterMs, summary }
}

/** The answers that are neither -LOADING (catching up) nor the replica's new value (or PONG). */
const notLoadingOrNew = (answers: Answer[]) => answers.filter((reply) => 'error' in reply ? !/^LOADING shardline shard is catching up with its replicas/.test(reply.error) : reply.value !== 'new' && reply.value !== 'PONG')
const NEVER_OLD = "every answer is -LOADING or the replica's new value, never the primary's old one"

t.test('a hang shorter than stallMs costs nothing; a longer one answers -LOADING until the replica\'s writes are in, never an older value', async (t) => {
  // stallMs well above the short pause, for a shared machine's scheduling delays.
  const pair = await startPair(t, 'replication:\n  timeoutMs: 3000\n  heartbeatMs: 50\n  catchUp:\n    stallMs: 500\n')
  await writeAll(pair.client(pair.primary), 'old')
  await converged(pair.client(pair.primary), pair.client(pair.replica))

  const redis = pair.client(pair.primary)
  pair.primary.child.kill('SIGSTOP')
  const duringShortHang = [answer(redis.get(KEYS[0])), answer(redis.ping())]
  await delay(100)
  pair.primary.child.kill('SIGCONT')
  t.same(await Promise.all(duringShortHang), [{ value: 'old' }, { value: 'PONG' }], 'a 100 ms hang: answered as usual')
  t.equal(await catchUps(pair.primary, 'caught_up'), 0, 'no catch-up')
  t.notMatch(pair.primary.output(), /catching up/)

  // Shorter than the replication timeout: the write-back link stays up through the hang.
  const { queued, loop, newAfterMs, summary } = await hangWhileReplicaTakesWrites(pair, () => delay(1200))
  t.same(notLoadingOrNew(queued), [], `commands that waited through the hang: ${NEVER_OLD}`)
  t.same(notLoadingOrNew(loop), [], `reads right after SIGCONT: ${NEVER_OLD}`)
  t.ok(queued.every((reply) => 'error' in reply), 'every command that waited through the hang, PING included, is answered -LOADING (routers keep the primary knocked out)')
  t.comment(summary)
  t.ok(newAfterMs < 2000, `caught up within the bound (${newAfterMs} ms)`)
  t.equal(await catchUps(pair.primary, 'caught_up'), 1, 'one catch-up, counted as caught_up')
  t.match(await metrics(pair.primary), /shardline_replication_catch_up_duration_seconds_count\{[^}]*outcome="caught_up"[^}]*\} 1\n/)
  t.match((await stats(pair.primary)).catchUp, { active: null, caughtUp: 1, gaveUp: 0, last: { outcome: 'caught_up', trigger: /^the event loop stalled for \d+ ms$/ } })
  await logged(pair.primary, /caught up with the replicas: serving/)
})

t.test('a hang longer than the replication timeout (the replica drops the link): -LOADING until the link is back and caught up', async (t) => {
  const pair = await startPair(t, 'replication:\n  timeoutMs: 1000\n  heartbeatMs: 50\n')
  await writeAll(pair.client(pair.primary), 'old')
  await converged(pair.client(pair.primary), pair.client(pair.replica))
  // Held until the replica has dropped the hung primary's write-back link.
  const dropped = () => waitFor(async () => (await stats(pair.replica)).peers.length === 0, 10_000, () => 'the replica to drop the hung primary')
  const { queued, loop, newAfterMs, summary } = await hangWhileReplicaTakesWrites(pair, dropped)
  t.same(notLoadingOrNew(queued), [], `commands that waited through the hang: ${NEVER_OLD}`)
  t.same(notLoadingOrNew(loop), [], `reads right after SIGCONT: ${NEVER_OLD}`)
  t.comment(summary)
  t.ok(newAfterMs < 3000, `caught up within the bound (${newAfterMs} ms)`)
  t.equal(await catchUps(pair.primary, 'caught_up'), 1, 'one catch-up, caught up')
  t.equal(await catchUps(pair.primary, 'gave_up'), 0)
})

t.test('with its replica dead, a resumed primary gives up after catchUp.timeoutMs, says so once, and serves; a replica long gone is not waited for', async (t) => {
  const pair = await startPair(t, 'replication:\n  timeoutMs: 1000\n  heartbeatMs: 50\n  catchUp:\n    timeoutMs: 1500\n')
  const redis = pair.client(pair.primary)
  await writeAll(redis, 'v')
  await pair.replica.stop('SIGKILL')
  pair.primary.child.kill('SIGSTOP')
  const queued = answer(redis.get(KEYS[0]))
  await delay(600)
  pair.primary.child.kill('SIGCONT')
  const resumedAt = Date.now()
  t.match(await queued, { error: /^LOADING shardline shard is catching up with its replicas/ })
  await t.rejects(redis.ping(), /^LOADING/, 'PING too, so routers keep it knocked out')
  const readyz = await fetch(`${pair.primary.adminUrl}/readyz`)
  t.same([readyz.status, await readyz.json()], [503, { error: 'not ready: catching up with its replicas', code: 'not_ready' }])
  t.match(await redis.info('persistence'), /loading:1\r\nshardline_loading_reason:catch_up/, 'INFO says it is loading, and why')
  t.match(await metrics(pair.primary), /shardline_replication_loading\{reason="catch_up",shard="p"\} 1/)
  t.match((await stats(pair.primary)).catchUp, { active: { waitingFor: [{ state: 'connecting' }] } })

  const servedAfterMs = await waitFor(async () => {
    const reply = await answer(redis.get(KEYS[0]))
    return 'value' in reply && reply.value === 'v' && Date.now() - resumedAt
  }, 10_000, () => 'the primary to serve again')
  t.ok(servedAfterMs >= 1000 && servedAfterMs < 4000, `served again ${servedAfterMs} ms after SIGCONT, once the 1500 ms catch-up timeout passed`)
  t.equal(await catchUps(pair.primary, 'gave_up'), 1, 'counted as gave_up')
  t.equal(pair.primary.output().match(/catch-up gave up/g)?.length, 1, 'one warning says so')
  t.equal((await fetch(`${pair.primary.adminUrl}/readyz`)).status, 200)
  t.match(await metrics(pair.primary), /shardline_replication_loading\{reason="catch_up",shard="p"\} 0/)

  // By now the link has been down for longer than the replication timeout: the next hang does
  // not wait for it.
  pair.primary.child.kill('SIGSTOP')
  const afterSecondHang = answer(redis.get(KEYS[0]))
  await delay(600)
  pair.primary.child.kill('SIGCONT')
  t.same(await afterSecondHang, { value: 'v' }, 'answered at once after the next hang')
  t.equal(await catchUps(pair.primary, 'gave_up'), 1, 'no second catch-up')
  await logged(pair.primary, /no catch-up: every write-back link was down or silent before it/)
})

t.test('a replica hung for longer than a second when the primary stalls is not waited for', async (t) => {
  const pair = await startPair(t, 'replication:\n  timeoutMs: 5000\n  heartbeatMs: 50\n')
  const redis = pair.client(pair.primary)
  await writeAll(redis, 'v')
  t.teardown(() => pair.replica.child.kill('SIGCONT'))
  pair.replica.child.kill('SIGSTOP')
  await delay(1500)
  pair.primary.child.kill('SIGSTOP')
  const queued = answer(redis.get(KEYS[0]))
  await delay(600)
  pair.primary.child.kill('SIGCONT')
  t.same(await queued, { value: 'v' }, 'answered at once: the write-back link was connected but silent before the stall')
  await logged(pair.primary, /no catch-up: every write-back link was down or silent before it/)
  t.equal(await catchUps(pair.primary, 'caught_up') + await catchUps(pair.primary, 'gave_up'), 0)
})
