// `shardline cluster --config config/regions.yaml` (with its ports made 0): both regions start, a write
// through either region's router is read through the other's, a killed router comes back on the address
// the other region's shards ship to, and SIGTERM stops every child.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAlive, waitFor } from '../helpers/processes.ts'

const CLI = new URL('../../cli/shardline.ts', import.meta.url).pathname
const REGIONS = new URL('../../config/regions.yaml', import.meta.url).pathname
/** How long a write may take to show in the other region: the shippers say hello and ship within about a second; two busy cores. */
const CROSS_DEADLINE_MS = 15_000
/** Twelve processes start on two cores: about 15 s alone, and 50 s has been seen beside other tests. */
const START_DEADLINE_MS = 120_000

const config = join(mkdtempSync(join(tmpdir(), 'shardline-regions-')), 'regions.yaml')
writeFileSync(config, readFileSync(REGIONS, 'utf8').replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:0'))

t.test('two regions start from config/regions.yaml, writes cross both ways, stop kills every child', async (t) => {
  const cluster = spawn(process.execPath, [CLI, 'cluster', '--config', config, '--max-memory', '16mb'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SHARDLINE_LOG_FORMAT: 'json' } })
  let output = ''
  cluster.stdout.on('data', (chunk) => (output += chunk))
  cluster.stderr.on('data', (chunk) => (output += chunk))
  const exited = once(cluster, 'exit')
  const childPids = () => [...new Set([...output.matchAll(/^\[[^\]]+\] .*"pid":(\d+)/gm)].map((match) => Number(match[1])))]
  t.teardown(() => {
    cluster.kill('SIGKILL')
    for (const pid of childPids()) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  })
  await waitFor(() => {
    if (cluster.exitCode !== null) throw new Error(`the cluster exited early:\n${output}`)
    return /shardline cluster ready: regions east, west/.test(output)
  }, START_DEADLINE_MS, () => output)
  const regionUrl = (region: string) => new RegExp(`shardline cluster region ${region} ready: (http://[\\d.:]+) \\(admin http://[\\d.:]+, resp [\\d.:]+\\), (\\d+) shard processes`).exec(output)!
  const [, east, eastShards] = regionUrl('east')
  const [, west, westShards] = regionUrl('west')
  t.same([Number(eastShards), Number(westShards)], [6, 4], 'east runs 3 shards, west 2, each a primary and a replica')
  t.not(east, west, 'each region has its own router')
  for (const name of ['east/main/s2', 'east/main/s0.replica1', 'west/main/s1', 'east/router', 'west/router']) t.ok(output.includes(`[${name}] `), `output of ${name} is prefixed`)

  const set = async (router: string, key: string, value: string) => {
    const response = await fetch(`${router}/${key}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value, ttl: 120 }) })
    t.equal(response.status, 200, `${key} written through ${router}`)
  }
  const readsWithin = async (router: string, key: string, value: string, what: string) => {
    const started = Date.now()
    await waitFor(async () => {
      const response = await fetch(`${router}/${key}`)
      return response.ok && ((await response.json()) as { value: string }).value === value
    }, CROSS_DEADLINE_MS, () => `${what}: ${key} did not reach ${router}:\n${output.slice(-4000)}`)
    t.pass(`${what} in ${Date.now() - started} ms`)
  }
  await set(east, 'greeting', 'from-east')
  await readsWithin(west, 'greeting', 'from-east', 'east to west')
  await set(west, 'reply', 'from-west')
  await readsWithin(east, 'reply', 'from-west', 'west to east')

  // kill -9 of west's router: it comes back on the addresses east's shards ship to, and they resume.
  const routerPid = Number([...output.matchAll(/^\[west\/router\] .*"pid":(\d+)/gm)].at(-1)![1])
  process.kill(routerPid, 'SIGKILL')
  await waitFor(() => (output.match(/^\[west\/router\] shardline router ready: /gm) ?? []).length === 2, 20_000, () => `west's router was not restarted:\n${output.slice(-4000)}`)
  const restarted = [...output.matchAll(/^\[west\/router\] shardline router ready: (http:\/\/[\d.:]+)/gm)].map((match) => match[1])
  t.equal(restarted[1], restarted[0], 'the restarted router serves the same address')
  await set(east, 'after-restart', 'still-crossing')
  await readsWithin(west, 'after-restart', 'still-crossing', 'east to the restarted west router')

  const pids = childPids()
  t.ok(pids.length >= 12, `saw ${pids.length} child pids (10 shards, 2 routers, a restart)`)
  cluster.kill('SIGTERM')
  const [code] = await exited
  t.equal(code, 0)
  const alive = pids.filter(isAlive)
  t.same(alive, [], 'no child outlives the cluster')
})
