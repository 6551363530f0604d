// `shardline cluster` (what npm start runs) with a config whose ports are 0: every process
// starts, the seed API and the get/set/del commands work through the router, a child killed with
// -9 is restarted on its addresses and serves again, SIGTERM stops all.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAlive, run, waitFor } from '../helpers/processes.ts'

const CLI = new URL('../../cli/shardline.ts', import.meta.url).pathname
const config = join(mkdtempSync(join(tmpdir(), 'shardline-cluster-')), 'cluster.yaml')
writeFileSync(config, `listen:
  data: 127.0.0.1:0
  admin: 127.0.0.1:0
pools:
  main:
    shards:
      - name: a
        primary: 127.0.0.1:0
        replicas: [127.0.0.1:0]
      - name: b
        primary: 127.0.0.1:0
`)

t.test('the local cluster starts, serves, and stops every child on SIGTERM', async (t) => {
  const cluster = spawn(process.execPath, [CLI, 'cluster', '--config', config, '--max-memory', '16mb'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SHARDLINE_LOG_FORMAT: 'json' } })
  let output = ''
  cluster.stdout.on('data', (chunk) => (output += chunk))
  cluster.stderr.on('data', (chunk) => (output += chunk))
  const exited = once(cluster, 'exit')
  t.teardown(() => {
    cluster.kill('SIGKILL')
    for (const pid of output.matchAll(/"pid":(\d+)/g)) {
      try {
        process.kill(Number(pid[1]), 'SIGKILL')
      } catch {
        // already gone
      }
    }
  })
  const ready = await waitFor(() => {
    if (cluster.exitCode !== null) throw new Error(`the cluster exited early:\n${output}`)
    return /shardline cluster ready: (http:\/\/[\d.:]+) \(admin (http:\/\/[\d.:]+)\), 3 shard processes/.exec(output)
  }, 30_000, () => output)
  const [, url, adminUrl] = ready
  for (const name of ['main/a]', 'main/a.replica1]', 'main/b]', 'router]']) t.ok(output.includes(`[${name}`), `output of ${name} is prefixed`)

  const set = await run(process.execPath, [CLI, 'set', 'greeting', 'hello', '--ttl', '30', '--router', url])
  t.equal(set.stdout.trim(), '{"stored":true}')
  t.equal((await run(process.execPath, [CLI, 'get', 'greeting', '--router', url])).stdout.trim(), '{"value":"hello"}')
  t.equal((await run(process.execPath, [CLI, 'del', 'greeting', '--router', url])).stdout.trim(), '{"deleted":true}')
  const miss = await run(process.execPath, [CLI, 'get', 'greeting', '--router', url])
  t.equal(miss.code, 1)
  t.match(miss.stderr, /404/)
  t.same(await (await fetch(`${adminUrl}/readyz`)).json(), { status: 'ready' })

  // kill -9 of a shard and then of the router: the cluster restarts each, as Kubernetes would.
  const pidOf = (name: string) => Number([...output.matchAll(new RegExp(`"pid":(\\d+)[^\\n]*"name":"${name}"`, 'g'))].at(-1)![1])
  const readyLines = (name: string) => output.split('\n').filter((line) => line.startsWith(`[${name}] shardline `) && line.includes(' ready: ')).length
  const shardPid = pidOf('shard:a')
  process.kill(shardPid, 'SIGKILL')
  await waitFor(() => readyLines('main/a') === 2, 20_000, () => `main/a was not restarted:\n${output}`)
  t.match(output, /"child":"main\/a","code":null,"signal":"SIGKILL","restarts":1/, 'the restart is logged and counted')
  t.not(pidOf('shard:a'), shardPid, 'a new process serves shard a')
  const restartedPort = /\[main\/a\] shardline shard a ready: resp [\d.]+:(\d+)/g
  const ports = [...output.matchAll(restartedPort)].map((m) => m[1])
  t.equal(ports[1], ports[0], 'the restarted shard listens on the data port the router knows')
  // The router re-admits the restarted primary (after its warm-up from the replica) on its own.
  await waitFor(async () => (await fetch(`${adminUrl}/readyz`)).ok && !(await (await fetch(`${adminUrl}/admin/shards`)).json() as { destinations: Array<{ knockedOut: boolean }> }).destinations.some((d) => d.knockedOut), 20_000, () => 'shard a was not re-admitted')
  t.equal((await run(process.execPath, [CLI, 'set', 'after', 'restart', '--router', url])).stdout.trim(), '{"stored":true}')

  process.kill(pidOf('router'), 'SIGKILL')
  await waitFor(() => readyLines('router') === 2, 20_000, () => `the router was not restarted:\n${output}`)
  const newUrl = [...output.matchAll(/\[router\] shardline router ready: (http:\/\/[\d.:]+)/g)].at(-1)![1]
  t.equal((await run(process.execPath, [CLI, 'get', 'after', '--router', newUrl])).stdout.trim(), '{"value":"restart"}', 'the restarted router serves the same data')

  const pids = [...new Set([...output.matchAll(/"pid":(\d+)/g)].map((m) => Number(m[1])))]
  t.ok(pids.length >= 4, `saw ${pids.length} child pids`)
  cluster.kill('SIGTERM')
  const [code] = await exited
  t.equal(code, 0)
  const alive = pids.filter(isAlive)
  t.same(alive, [], 'no child outlives the cluster')
})
