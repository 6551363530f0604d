// `workers: N`: N router processes share the data port, the primary serves the admin port
// with /metrics summed over the workers, and SIGTERM stops every worker.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRouterProcess, startShardProcess, waitFor } from '../helpers/processes.ts'

t.test('two workers serve one port and report one set of metrics', async (t) => {
  const shard = await startShardProcess(t, ['--name', 's0', '--max-memory', '16mb'])
  const config = join(mkdtempSync(join(tmpdir(), 'shardline-workers-')), 'router.yaml')
  writeFileSync(config, `listen:\n  data: 127.0.0.1:0\n  admin: 127.0.0.1:0\npools:\n  main:\n    shards:\n      - name: s0\n        primary: 127.0.0.1:${shard.port}\nworkers: 2\n`)
  const router = await startRouterProcess(t, config)
  t.match(router.output(), /\(2 workers\)/)
  const workerPids = () => new Set([...router.output().matchAll(/"pid":(\d+),"hostname":"[^"]*","name":"router:\d"/g)].map((m) => m[1]))
  for (let i = 0; i < 40; i++) {
    const response = await fetch(`${router.url}/k${i}`, { method: 'POST', headers: { 'content-type': 'application/json', connection: 'close' }, body: JSON.stringify({ value: i }) })
    t.equal(response.status, 200)
  }
  const metrics = await waitFor(async () => {
    const text = await (await fetch(`${router.adminUrl}/metrics`)).text()
    return /shardline_router_requests_total\{op="set",code="200"\} 40\b/.test(text) && text
  }, 10_000, () => 'the primary never reported 40 sets summed over its workers')
  t.match(metrics, /shardline_router_destination_connections\{pool="main",shard="s0",role="primary",address="[^"]+"\} 4\b/, 'two connections from each of two workers')
  t.same(await (await fetch(`${router.adminUrl}/readyz`)).json(), { status: 'ready' })
  await router.stop('SIGTERM')
  const alive = [...workerPids()].filter((pid) => {
    try {
      process.kill(Number(pid), 0)
      return true
    } catch {
      return false
    }
  })
  t.same(alive, [], 'no worker outlives the primary')
})
