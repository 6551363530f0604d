// The warm-up route end to end: four real shards, a router that goes from three of them to four by a
// config reload. Every key reads back right at once, the moved ones are back-filled into the new shard,
// a delete after the reload sticks; windowMs 0 shows the misses warm-up saves; a router started
// fresh with a draining shard reads through to it.
import t, { type Test } from 'tap'
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { HashRing } from '../../common/ring.ts'
import { START_TIMEOUT_MS, startRouterProcess, startShardProcess, waitFor, type RouterProcess, type ShardProcess } from '../helpers/processes.ts'

const KEYS = 2000
const NAMES = ['s0', 's1', 's2', 's3']
// Four at once on two shared cores: each start gets twice the usual time.
const shards = await Promise.all(NAMES.map((name) => startShardProcess(t, ['--name', name], 2 * START_TIMEOUT_MS)))
const direct = new Map(NAMES.map((name, i) => [name, new Redis({ host: '127.0.0.1', port: shards[i].port, lazyConnect: true, maxRetriesPerRequest: 1 })]))
t.teardown(() => direct.forEach((redis) => redis.disconnect()))

// The router's own ring, to know which keys move from three shards to four.
const three = new HashRing(NAMES.slice(0, 3), 8000)
const four = new HashRing(NAMES, 8000)

function routerYaml(shardCount: number, options: { windowMs?: number; draining?: string } = {}): string {
  const shardLines = shards.slice(0, shardCount).map((shard: ShardProcess, i) =>
    `      - name: ${NAMES[i]}\n        primary: 127.0.0.1:${shard.port}${NAMES[i] === options.draining ? '\n        draining: true' : ''}\n`).join('')
  // Generous timeouts: the machine these tests run on is shared, and a slow reply must not fail a write.
  return `listen:\n  data: 127.0.0.1:0\n  admin: 127.0.0.1:0\nconnections:\n  timeoutMs: 10000\n  connectTimeoutMs: 10000\nhealth:\n  failuresBeforeKnockout: 20\npools:\n  main:\n    shards:\n${shardLines}${options.windowMs === undefined ? '' : `migration:\n  windowMs: ${options.windowMs}\n`}`
}

/** A config file the test rewrites in place (by rename, as an editor or a ConfigMap would). */
function configFile(text: string): { file: string; rewrite(text: string): void } {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-warm-up-'))
  const file = join(dir, 'router.yaml')
  const rewrite = (next: string) => {
    writeFileSync(`${file}.tmp`, next)
    renameSync(`${file}.tmp`, file)
  }
  rewrite(text)
  return { file, rewrite }
}

const keysOf = (prefix: string) => Array.from({ length: KEYS }, (_, i) => `${prefix}:${i}`)
const valueOf = (key: string) => `value of ${key}`

async function batch(router: RouterProcess, ops: object[]): Promise<Array<Record<string, unknown>>> {
  const results: Array<Record<string, unknown>> = []
  for (let i = 0; i < ops.length; i += 1000) {
    const response = await fetch(`${router.url}/-/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ops: ops.slice(i, i + 1000) }) })
    if (response.status !== 200) throw new Error(`batch: ${response.status} ${await response.text()}`)
    results.push(...((await response.json()) as { results: Array<Record<string, unknown>> }).results)
  }
  return results
}

async function writeAll(t: Test, router: RouterProcess, keys: string[]): Promise<void> {
  await waitFor(async () => (await fetch(`${router.adminUrl}/readyz`)).status === 200, 30_000, () => 'the router never became ready')
  const results = await batch(router, keys.map((key) => ({ op: 'set', key, value: valueOf(key) })))
  t.same(results.filter((result) => result.stored !== true).slice(0, 3), [], `${keys.length} keys written`)
}
/** The keys that do not read back as written. */
async function wrongReads(router: RouterProcess, keys: string[]): Promise<string[]> {
  const results = await batch(router, keys.map((key) => ({ op: 'get', key })))
  return keys.filter((key, i) => results[i].value !== valueOf(key))
}

const getv = async (shard: string, key: string) => (await direct.get(shard)!.call('SL.GETV', key)) as [string, number, number, number] | null
/** The pool's route below the hot-key route, as /admin/config describes it. */
const poolNode = async (router: RouterProcess) => (await admin(router, '/admin/config')).tree.default.route.next
const admin = async (router: RouterProcess, path: string) => (await fetch(`${router.adminUrl}${path}`)).json()
async function metric(router: RouterProcess, line: RegExp): Promise<number> {
  const text = await (await fetch(`${router.adminUrl}/metrics`)).text()
  const match = text.split('\n').find((l) => line.test(l))
  return match ? Number(match.split(' ').pop()) : 0
}

async function reloadTo(router: RouterProcess, config: { rewrite(text: string): void }, text: string, generation: number): Promise<void> {
  config.rewrite(text)
  router.child.kill('SIGHUP')
  await waitFor(async () => (await admin(router, '/admin/config')).generation >= generation, 10_000, () => `the router did not reload:\n${router.output()}`)
}

t.test('3 → 4 shards: every key reads back at once, moved keys are back-filled, a delete after the reload sticks', async (t) => {
  const keys = keysOf('grow')
  const moved = keys.filter((key) => three.lookup(key) !== four.lookup(key))
  t.ok(moved.length > KEYS / 8 && moved.every((key) => four.lookup(key) === 's3'), `${moved.length} of ${KEYS} keys move, all to s3`)
  const config = configFile(routerYaml(3))
  const router = await startRouterProcess(t, config.file)
  await writeAll(t, router, keys)

  await reloadTo(router, config, routerYaml(4), 2)
  t.match(await poolNode(router), { warmUp: { windowSecondsLeft: Number, previousOwners: [NAMES.slice(0, 3)] } }, 'the pool has a warm-up node')
  t.ok((await metric(router, /^shardline_router_migration_window_seconds\{pool="main"\}/)) > 1790, 'a 30-minute window is open')
  const route = await admin(router, `/admin/route/${encodeURIComponent(moved[0])}`)
  t.match(route.steps, [{ route: 'prefix' }, { route: 'hot keys' }, { route: 'warm-up', decision: `new owner s3; on a miss read ${three.lookup(moved[0])} and back-fill`, why: /migration window: \d+ s left/ }, { route: 'pool main', decision: 'shard s3' }])
  t.same((await Promise.all(moved.map((key) => getv('s3', key)))).filter(Boolean), [], 'the moved keys are not on s3 yet')

  const deleted = moved[1]
  t.same((await batch(router, [{ op: 'delete', key: deleted }]))[0], { deleted: true })

  const rest = keys.filter((key) => key !== deleted)
  t.same(await wrongReads(router, rest), [], 'every key reads back right at once after the reload')
  t.same((await batch(router, [{ op: 'get', key: deleted }]))[0], { error: 'not found', code: 'not_found' }, 'the key deleted after the reload stays deleted')
  t.equal(await getv(three.lookup(deleted), deleted), null, 'on its previous owner too')

  const backfilled = await Promise.all(moved.filter((key) => key !== deleted).map(async (key) => [await getv('s3', key), await getv(three.lookup(key), key)] as const))
  t.ok(backfilled.every(([now, before]) => now !== null && before !== null && now[1] === before[1] && now[0] === before[0]), 'every moved key is on s3 now, with its version')
  t.equal(await metric(router, /^shardline_router_warmup_reads_total\{pool="main",outcome="hit"\}/), moved.length - 1)
  t.equal(await metric(router, /^shardline_router_warmup_backfills_total\{pool="main",outcome="stored"\}/), moved.length - 1)

  // A second reload with the same owners carries the window on: it does not end it.
  await reloadTo(router, config, `${routerYaml(4)}accessLog: false\n`, 3)
  t.ok((await metric(router, /^shardline_router_migration_window_seconds\{pool="main"\}/)) > 1700, 'the window is carried over')
  t.same(await wrongReads(router, rest), [])
})

t.test('windowMs 0: the moved keys miss, which is what the warm-up route saves', async (t) => {
  const keys = keysOf('cold')
  const moved = keys.filter((key) => three.lookup(key) !== four.lookup(key))
  const config = configFile(routerYaml(3, { windowMs: 0 }))
  const router = await startRouterProcess(t, config.file)
  await writeAll(t, router, keys)
  await reloadTo(router, config, routerYaml(4, { windowMs: 0 }), 2)
  t.equal((await poolNode(router)).warmUp, undefined, 'no warm-up node in the tree')
  t.same(await wrongReads(router, keys), moved, 'exactly the moved keys miss')
})

t.test('a router started fresh with a draining shard reads through to it', async (t) => {
  const keys = keysOf('drain')
  const onS3 = keys.filter((key) => four.lookup(key) === 's3')
  const writer = await startRouterProcess(t, configFile(routerYaml(4)).file)
  await writeAll(t, writer, keys)
  const router = await startRouterProcess(t, configFile(routerYaml(4, { draining: 's3' })).file)
  t.match(await poolNode(router), { warmUp: { windowSecondsLeft: 0, drainingRing: NAMES } })
  t.same(await wrongReads(router, keys), [], 'every key reads back right')
  const owners = await Promise.all(onS3.map((key) => getv(three.lookup(key), key)))
  t.ok(owners.every((entry) => entry !== null), `the ${onS3.length} keys s3 held are back-filled into their owners`)
})
