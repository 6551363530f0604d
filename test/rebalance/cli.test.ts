// `shardline rebalance` as an operator runs it, against real shards: bad flags exit 2; SIGTERM
// stops it after the keys in flight with the summary and exit 143, and a rerun does only what is
// left; --dry-run changes nothing; a shard that stays unreachable past --shard-timeout exits 1.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { freePort, startShardProcess, waitFor } from '../helpers/processes.ts'
import { runRebalance } from '../helpers/elastic-pool.ts'

const CLI = fileURLToPath(new URL('../../cli/shardline.ts', import.meta.url))
const KEYS = 1000
const [from, to] = await Promise.all(['from', 'to'].map((name) => startShardProcess(t, ['--name', name], 120_000)))
const dir = mkdtempSync(join(tmpdir(), 'shardline-rebalance-cli-'))
const configFile = (name: string, text: string) => {
  writeFileSync(join(dir, name), text)
  return join(dir, name)
}
// "from" drains into "to": every key on it moves.
const drain = configFile('drain.yaml', `pools:
  main:
    shards:
      - { name: from, primary: 127.0.0.1:${from.port}, draining: true }
      - { name: to, primary: 127.0.0.1:${to.port} }
`)
const clients = [from, to].map((shard) => new Redis({ port: shard.port, host: '127.0.0.1' }))
t.teardown(() => clients.forEach((client) => client.disconnect()))
const [fromClient, toClient] = clients
const pipeline = fromClient.pipeline()
for (let i = 0; i < KEYS; i++) pipeline.set(`key:${i}`, `v${i}`)
await pipeline.exec()

async function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'rebalance', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

t.test('bad flags and configs exit 2 with the reason', async (t) => {
  for (const [args, reason] of [
    [[], /--config is required/],
    [['--config', join(dir, 'missing.yaml')], /cannot read the config/],
    [['--config', drain, '--rate', '-1'], /--rate/],
    [['--config', drain, '--rate', '10000001'], /--rate: "10000001" must be a whole number from 0 to 10000000/],
    [['--config', drain, '--page', '0'], /--page/],
    [['--config', drain, '--page', '10001'], /--page/],
    [['--config', drain, '--pool', 'nope'], /"nope" names no pool/],
    [['--config', drain, '--metrics', 'nowhere'], /--metrics/],
    [['--config', drain, '--bogus'], /Unknown option '--bogus'/],
  ] as const) {
    const run = await runCli([...args])
    t.equal(run.code, 2, args.join(' '))
    t.match(run.stderr, reason)
  }
  const help = await runCli(['--help'])
  t.match(help.stdout, /--rate <keys\/s>.*token bucket/)
})

t.test('--dry-run counts what would move and changes nothing', async (t) => {
  const run = await runCli(['--config', drain, '--dry-run'])
  t.equal(run.code, 0)
  t.match(run.stdout, new RegExp(`^rebalance: scanned ${KEYS} keys, moved ${KEYS}, skipped 0 as older, removed 0, failed 0 in [\\d.]+ s\\n$`))
  t.same([await fromClient.dbsize(), await toClient.dbsize()], [KEYS, 0])
})

t.test('SIGTERM stops after the keys in flight with the summary and 143; a rerun does the rest', async (t) => {
  let stoppedAt = 0
  const stopped = await runRebalance(t, drain, ['--rate', '200', '--page', '50'], async (metricsUrl) => {
    stoppedAt = await waitFor(async () => {
      const text = await (await fetch(metricsUrl)).text()
      return Number(/shardline_rebalance_keys_total\{outcome="removed"\} (\d+)/.exec(text)?.[1] ?? 0)
    }, 30_000, () => 'the job to remove a key')
  }, 'SIGTERM')
  t.equal(stopped.code, 143, stopped.output)
  t.ok(stopped.summary && stopped.summary.moved >= stoppedAt && stopped.summary.moved < KEYS, `stopped part way: ${JSON.stringify(stopped.summary)}`)
  t.equal(stopped.summary!.removed, stopped.summary!.moved, 'every key it moved was removed from the old shard before it exited')
  t.equal(await toClient.dbsize(), stopped.summary!.moved)

  const rest = await runRebalance(t, drain)
  t.equal(rest.code, 0, rest.output)
  t.match(rest.summary, { scanned: KEYS, moved: KEYS - stopped.summary!.moved, failed: 0 }, 'the rerun moves only what was left')
  t.same([await fromClient.dbsize(), await toClient.dbsize()], [0, KEYS])
  const values = await toClient.mget(Array.from({ length: KEYS }, (_, i) => `key:${i}`))
  t.ok(values.every((value, i) => value === `v${i}`), 'every value arrived intact')
})

t.test('a shard unreachable past --shard-timeout: its keys count failed, exit 1', async (t) => {
  const down = configFile('down.yaml', `pools:
  main:
    shards:
      - { name: to, primary: 127.0.0.1:${to.port}, draining: true }
      - { name: gone, primary: 127.0.0.1:${await freePort()} }
`)
  const run = await runCli(['--config', down, '--shard-timeout', '1'])
  t.equal(run.code, 1, run.stderr)
  t.match(run.stderr, /rebalance: shard main\/gone: main\/gone did not answer for 1 s/)
  t.match(run.stdout, new RegExp(`moved 0, skipped 0 as older, removed 0, failed ${KEYS} in`))
  t.equal(await toClient.dbsize(), KEYS, 'nothing was dropped from the shard whose keys could not be stored')
})
