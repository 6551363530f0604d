// A shard flaps (kill -9, restart on the same port) while `shardline rebalance` moves keys off it
// (twemproxy#604 as a test): the job retries through the outage and finishes with exit 0, nothing
// acknowledged is lost, no read serves an older value than the last acknowledged write, and a
// second run cleans up what the restart brought back (drops the replica had not seen yet).
// Keys moving off the shards that stay up must never read as missing while the job moves them:
// its SL.PUTV to the new owner is acknowledged before its SL.DROP on the old one.
import t from 'tap'
import { startShardProcess, waitFor } from '../helpers/processes.ts'
import { KeyModel, PoolRouter, dumpShard, keyName, poolYaml, readUntil, ringOf, runRebalance, startShards, type JobRun } from '../helpers/elastic-pool.ts'

const KEYS = 10_000
const { shards, pair } = await startShards(t, ['s0', 's1', 's2', 's3'], 's1')
const before = poolYaml(['s0', 's1', 's2'].map((name) => shards.get(name)!))
const after = poolYaml(['s0', 's1', 's2', 's3'].map((name) => shards.get(name)!))
const router = await PoolRouter.start(t, before)
const model = new KeyModel(KEYS)
await model.load(router)
// While s1's primary is down (and until the router knocks it out), the keys it holds may fail to
// read, and so may the keys moving from it to s3 (the warm-up route reads s1 for them on a miss
// on s3). No other key may, and no key may read a wrong value.
const ringBefore = ringOf(before)
const ringAfter = ringOf(after)
const onS1 = (k: number) => ringBefore.lookup(keyName(k)) === 's1' || ringAfter.lookup(keyName(k)) === 's1'
model.mayFailToRead = onS1

/** How many old copies the job removed so far, from its /metrics. */
async function removed(metricsUrl: string): Promise<number> {
  try {
    const text = await (await fetch(metricsUrl)).text()
    return Number(/shardline_rebalance_keys_total\{outcome="removed"\} (\d+)/.exec(text)?.[1] ?? 0)
  } catch {
    return 0
  }
}

t.test('s1 primary killed and restarted mid-move: the job retries through it, nothing acknowledged is lost or served stale', async (t) => {
  await router.reload(after)
  let finished!: () => void
  const done = new Promise<void>((resolve) => (finished = resolve))
  let flapped = false
  // Slow enough (1,000 keys/s in pages of 100) that s1's scan is under way when it is killed.
  const jobRun: Promise<JobRun> = runRebalance(t, router.file, ['--rate', '1000', '--page', '100'], async (metricsUrl) => {
    // Removed, not moved: the reader's reads through the router back-fill s3 (the warm-up route),
    // so many of the job's copies find s3 as new already.
    await waitFor(async () => (await removed(metricsUrl)) >= 300, 60_000, () => 'the job to remove 300 old copies')
    await pair!.primary.stop('SIGKILL')
    await new Promise((resolve) => setTimeout(resolve, 300))
    shards.get('s1')!.primary = await startShardProcess(t, pair!.primaryArgs, 120_000)
    flapped = true
  }).finally(finished)
  const [run] = await Promise.all([jobRun, model.writeUntil(router, done), readUntil(model, [router], done, 'flap')])
  t.ok(flapped, 's1 was killed and restarted while the job ran')
  // A shard down for less than --shard-timeout is waited for: its pages are read again (its
  // restarted process knows no cursor, so the scan starts over) and moves are idempotent.
  t.equal(run.code, 0, `the job retried through the flap and exits 0:\n${run.output}`)
  t.match(run.summary, { failed: 0 })

  // Drops the killed primary acknowledged before its replica saw them came back with the restart
  // (it warmed up from the replica): the old copies are still there, and a second run removes them.
  const again = await runRebalance(t, router.file)
  t.equal(again.code, 0, again.output)
  t.match(again.summary, { moved: 0, failed: 0 }, `a second run moves nothing new: ${JSON.stringify(again.summary)}`)
  const ring = ringAfter
  for (const name of ['s0', 's1', 's2', 's3']) {
    const misplaced = [...(await dumpShard(shards.get(name)!.primary))].filter(([key, entry]) => !entry.tombstone && ring.lookup(key) !== name)
    t.same(misplaced.slice(0, 5), [], `${name} holds only its own live keys`)
  }

  model.mayFailToRead = () => false
  await waitFor(async () => (await fetch(`${router.process.adminUrl}/readyz`)).status === 200, 30_000, () => 'the router to see s1 back')
  await model.sweep(router, 'after the flap')
  t.same(model.problems.slice(0, 10), [], `${model.reads} reads (${model.readErrors} failed while s1 was down), ${model.writes} writes: every read as new as the last acknowledged write, every key there after`)
})
