// The end-to-end test with real processes: 3 shards and 10,000 keys behind two routers;
// a fourth shard added (the routers reload one after the other), then `shardline rebalance`;
// then a shard drained, rebalanced, removed and stopped. A reader sweeps every key through the
// routers the whole time, a writer rewrites and deletes keys during each move: no key is ever
// unreadable or older than its last acknowledged write, and the shards end up holding exactly
// what the ring gives them.
import t, { type Test } from 'tap'
import { KeyModel, PoolRouter, dumpShard, keyName, poolYaml, readUntil, ringOf, runRebalance, startShards, type JobRun, type PoolShard } from '../helpers/elastic-pool.ts'

const KEYS = 10_000
const { shards } = await startShards(t, ['s0', 's1', 's2', 's3'])
const layout = (entries: Array<[string, { draining?: boolean }?]>): PoolShard[] => entries.map(([name, extra]) => ({ ...shards.get(name)!, ...extra }))
let yaml = poolYaml(layout([['s0'], ['s1'], ['s2']]))
const routers = [await PoolRouter.start(t, yaml), await PoolRouter.start(t, yaml)]
const model = new KeyModel(KEYS)
await model.load(routers[0])
// Keys nobody reads during the moves: the warm-up route back-fills what the reader reads, so it is
// these that the job itself stores on their new owner.
const COLD = 2000
const coldKey = (i: number) => `cold:${i}`
for (let i = 0; i < COLD; i += 500) await routers[0].batch(Array.from({ length: 500 }, (_, j) => ({ op: 'set', key: coldKey(i + j), value: `c${i + j}` })))

async function checkColdKeys(t: Test, label: string): Promise<void> {
  for (const router of routers) {
    let right = 0
    for (let i = 0; i < COLD; i += 500) {
      const results = await router.batch(Array.from({ length: 500 }, (_, j) => ({ op: 'get', key: coldKey(i + j) })))
      right += results.filter((result, j) => result.value === `c${i + j}`).length
    }
    t.equal(right, COLD, `${label}: every cold key reads back`)
  }
}

/** Reloads the routers one after the other onto next while the reader sweeps; writes pause (a write through a reloaded router is invisible to one not yet reloaded). */
async function reloadAll(t: Test, next: string, label: string): Promise<void> {
  const done = (async () => {
    for (const router of routers) await router.reload(next)
  })()
  const sweeps = await readUntil(model, routers, done.then(() => model.sweep(routers[0], `${label}, after`)), label)
  await done
  yaml = next
  t.ok(sweeps >= 1, `${label}: ${sweeps} sweeps of every key while the routers reloaded`)
}

/** Runs the job on the routers' config while the writer writes through one router and the reader sweeps through both. */
async function rebalanceUnderLoad(label: string, flags: string[] = []): Promise<JobRun> {
  let jobDone!: (run: JobRun) => void
  const finished = new Promise<JobRun>((resolve) => (jobDone = resolve))
  const [run] = await Promise.all([
    runRebalance(t, routers[0].file, flags).then((run) => {
      jobDone(run)
      return run
    }),
    model.writeUntil(routers[0], finished),
    readUntil(model, routers, finished, label),
  ])
  return run
}

/**
 * Every live entry on every shard sits on its home under the current ring. (Tombstones may not:
 * during the migration window the routers send each delete to the key's previous owners too, and
 * one that lands after the job passed stays there until it expires, harmless.)
 */
async function checkPlacement(t: Test, names: string[]): Promise<Map<string, Map<string, { tombstone: boolean }>>> {
  const ring = ringOf(yaml)
  const dumps = new Map(await Promise.all(names.map(async (name) => [name, await dumpShard(shards.get(name)!.primary)] as const)))
  for (const [name, keys] of dumps) {
    const misplaced = [...keys].filter(([key, entry]) => !entry.tombstone && ring.lookup(key) !== name).map(([key]) => key)
    t.same(misplaced.slice(0, 5), [], `${name} holds none of another shard's keys (${keys.size} keys)`)
  }
  return dumps
}

function checkModel(t: Test, label: string): void {
  t.same(model.problems.slice(0, 10), [], `${label}: ${model.reads} reads, ${model.writes} writes, every read as new as the last acknowledged write`)
}

t.test('adding a fourth shard: keys stay readable through the reloads, the job moves exactly the new shard\'s keys', async (t) => {
  await reloadAll(t, poolYaml(layout([['s0'], ['s1'], ['s2'], ['s3']])), '3 -> 4 reload')
  checkModel(t, 'reloads')
  const run = await rebalanceUnderLoad('3 -> 4 rebalance')
  t.equal(run.code, 0, `the job exits 0:\n${run.output}`)
  t.match(run.summary, { failed: 0 })
  // The reader's sweeps through the reloaded routers back-filled s3 already (the warm-up route):
  // most of the job's copies find s3 as new and are skipped; the old copies are removed.
  const { moved, skippedOlder, removed, scanned } = run.summary!
  t.ok(moved + skippedOlder > KEYS * 0.15 && removed > KEYS * 0.15 && scanned >= KEYS + COLD, `about a quarter of the keys moved or were there already, and their old copies went: ${JSON.stringify(run.summary)}`)
  const coldToS3 = Array.from({ length: COLD }, (_, i) => coldKey(i)).filter((key) => ringOf(yaml).lookup(key) === 's3').length
  t.ok(moved >= coldToS3, `the job stored the ${coldToS3} cold keys of s3 there itself (moved ${moved})`)
  await checkColdKeys(t, '3 -> 4')
  t.match(run.metrics, /shardline_rebalance_keys_total\{outcome="moved"\} \d+/)
  t.match(run.metrics, /shardline_rebalance_shards\{state="pending"\} \d+/)
  await model.sweep(routers[1], 'after the job')
  checkModel(t, '3 -> 4')

  const dumps = await checkPlacement(t, ['s0', 's1', 's2', 's3'])
  const ring = ringOf(yaml)
  const expected = [
    ...Array.from({ length: KEYS }, (_, i) => i).filter((i) => model.isLive(i)).map(keyName),
    ...Array.from({ length: COLD }, (_, i) => coldKey(i)),
  ].filter((key) => ring.lookup(key) === 's3').sort()
  const liveOnS3 = [...dumps.get('s3')!].filter(([, entry]) => !entry.tombstone).map(([key]) => key).sort()
  t.same(liveOnS3, expected, `s3 holds exactly the ${expected.length} live keys the ring gives it`)

  const again = await runRebalance(t, routers[0].file)
  t.match(again.summary, { moved: 0, failed: 0 }, `a second run finds nothing left to move: ${JSON.stringify(again.summary)}`)
})

t.test('draining a shard, rebalancing, removing and stopping it loses no key', async (t) => {
  await reloadAll(t, poolYaml(layout([['s0', { draining: true }], ['s1'], ['s2'], ['s3']])), 'drain s0 reload')
  const run = await rebalanceUnderLoad('drain s0 rebalance')
  t.equal(run.code, 0, `the job exits 0:\n${run.output}`)
  const dumps = await checkPlacement(t, ['s0', 's1', 's2', 's3'])
  t.equal(dumps.get('s0')!.size, 0, 's0 holds nothing after the job')

  await reloadAll(t, poolYaml(layout([['s1'], ['s2'], ['s3']])), 'remove s0 reload')
  await shards.get('s0')!.primary.stop()
  await Promise.all(routers.map((router) => model.sweep(router, 's0 stopped')))
  checkModel(t, 'drain and remove')
  await checkColdKeys(t, 's0 drained and removed')
  t.ok(model.deleted.size > 0, `${model.deleted.size} keys were deleted during the moves, and stay deleted`)
})
