// The chart's rebalance hook as it would run: the Job's command line from `helm template`, over the
// router config the chart renders with a draining shard, against real shard processes: the shard empties.
// auth is off here, as the test reads the shards directly; the chart's secured job is in helm-template.test.ts.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { parse, stringify } from 'yaml'
import { parseRouterConfig } from '../../router/config.ts'
import { poolRing } from '../../router/pool-layout.ts'
import { CHART_DIR, loadChartValues, mergeValues, renderRouterConfig } from '../../scripts/render-router-config.ts'
import { dumpShard } from '../helpers/elastic-pool.ts'
import { findHelm } from '../helpers/helm.ts'
import { run, startShardProcess, type ShardProcess } from '../helpers/processes.ts'

const CLI = new URL('../../cli/shardline.ts', import.meta.url).pathname
const helm = findHelm()
const KEYS = 300
const pool = { shards: 3, drainingShards: 1, replicasPerShard: 0 }
const auth = { enabled: false }

t.test('the hook Job\'s command empties the draining shard into the shards the ring gives its keys', { skip: helm ? false : 'no helm: run `npx node scripts/fetch-helm.ts`' }, async (t) => {
  const rendered = execFileSync(helm!, ['template', 'cache', CHART_DIR, '--namespace', 'prod', '--show-only', 'templates/rebalance-job.yaml',
    '--set', 'rebalance.enabled=true', '--set', 'rebalance.rateKeysPerSecond=100000', '--set', 'auth.enabled=false', ...Object.entries(pool).flatMap(([name, value]) => ['--set', `pools.main.${name}=${value}`])], { encoding: 'utf8' })
  const job = parse(rendered)
  const args = job.spec.template.spec.containers[0].args as string[]
  const mountPath = job.spec.template.spec.containers[0].volumeMounts[0].mountPath as string

  // The chart's config for the same values, with each shard's DNS name moved to a live process.
  // One after another: each start has its own deadline, however loaded the machine is.
  const shards: ShardProcess[] = []
  for (const name of ['s0', 's1', 's2']) shards.push(await startShardProcess(t, ['--name', name]))
  const config = renderRouterConfig(mergeValues(loadChartValues(), { pools: { main: pool }, auth }), { release: 'cache', namespace: 'prod' }) as { pools: { main: { shards: Array<{ name: string; primary: { address: string; admin: string } }> } } }
  config.pools.main.shards.forEach((shard, i) => (shard.primary = { address: `127.0.0.1:${shards[i].port}`, admin: `127.0.0.1:${shards[i].adminPort}` }))
  const dir = mkdtempSync(join(tmpdir(), 'shardline-hook-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'router.yaml')
  writeFileSync(file, stringify(config))
  const ring = poolRing(parseRouterConfig(stringify(config), file).pools.main, 8000)
  t.same(ring.nodes, ['s0', 's1'], 'the draining shard owns no keys')

  const draining = new Redis({ port: shards[2].port, host: '127.0.0.1', maxRetriesPerRequest: 0 })
  t.teardown(() => draining.disconnect())
  for (let i = 0; i < KEYS; i++) await draining.set(`user:${i}`, `value ${i}`)

  // The Job's arguments, with its mounted file and its metrics port moved to this machine.
  const local = args.map((arg) => arg.replace(`${mountPath}/router.yaml`, file).replace(/^--metrics=0\.0\.0\.0:\d+$/, '--metrics=127.0.0.1:0'))
  t.ok(local.includes(`--config=${file}`), `--config names the mounted router.yaml: ${args.join(' ')}`)
  const result = await run(process.execPath, [CLI, ...local])
  t.equal(result.code, 0, result.stderr)
  t.match(result.stdout, new RegExp(`^rebalance: scanned ${KEYS} keys, moved ${KEYS}, skipped 0 as older, removed \\d+, failed 0 in [\\d.]+ s$`, 'm'))

  t.same([...(await dumpShard(shards[2])).keys()], [], 's2 holds no key: it can be removed')
  const held = await Promise.all(shards.slice(0, 2).map((shard) => dumpShard(shard)))
  let misplaced = 0
  for (let i = 0; i < KEYS; i++) {
    const owner = Number(ring.lookup(`user:${i}`).slice(1))
    if (!held[owner].has(`user:${i}`) || held.some((keys, index) => index !== owner && keys.has(`user:${i}`))) misplaced++
  }
  t.equal(misplaced, 0, 'every key is on its owner and only there')
  const owner = new Redis({ port: shards[Number(ring.lookup('user:7').slice(1))].port, host: '127.0.0.1', maxRetriesPerRequest: 0 })
  t.teardown(() => owner.disconnect())
  t.equal(await owner.get('user:7'), 'value 7', 'with its value')
})
