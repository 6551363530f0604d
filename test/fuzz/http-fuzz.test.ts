// Fuzzes a real router over two shards (one with a replica) through HTTP: seeded op sequences with
// keys, values, TTLs and increments at the edges; after every step a well-formed answer, live processes, a model that agrees.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { freePort, startRouterProcess, startShardProcess, waitFor, type ShardProcess } from '../helpers/processes.ts'
import { checkAlive, checkAliveAfterLoss, checkRuns, fuzzSettings, labelled, PossibleWorlds, type RunLog } from './fuzz-support.ts'
import { batchOp, describeResponse, EMPTY_WORLD, fingerprint, getOp, opArbitrary, outcomes, requestFor, send, shapeProblem, VALID_KEYS, type HttpOp, type HttpResponse, type OpFamily } from './http-model.ts'
import { formatReply, RespConnection } from './resp-wire.ts'

const settings = fuzzSettings()
// Four processes start at once on a machine that may be busy with other test files: give them time.
const START_TIMEOUT_MS = 60_000
const [primaryPort, replicaPort] = [await freePort(), await freePort()]
const [s0, s0replica, s1] = await Promise.all([
  startShardProcess(t, ['--name', 's0', '--port', String(primaryPort), '--replicas', `127.0.0.1:${replicaPort}`], START_TIMEOUT_MS),
  startShardProcess(t, ['--name', 's0.replica1', '--port', String(replicaPort), '--replicaof', `127.0.0.1:${primaryPort}`], START_TIMEOUT_MS),
  startShardProcess(t, ['--name', 's1'], START_TIMEOUT_MS),
])
const destination = (shard: ShardProcess) => `{ address: 127.0.0.1:${shard.port}, admin: 127.0.0.1:${shard.adminPort} }`
// Hot-key spreading is off: a hot counter answers {"acknowledged": true}, which no model can check.
// The shard timeout is generous: on a busy machine a shard moving megabyte values can pause past the
// default second, and this test is about answers, not latency (a stall still shows as a 504).
const configFile = join(mkdtempSync(join(tmpdir(), 'shardline-fuzz-')), 'router.yaml')
writeFileSync(configFile, `listen:
  data: 127.0.0.1:0
  admin: 127.0.0.1:0
pools:
  main:
    hotKeys: { enabled: false }
    shards:
      - name: s0
        primary: ${destination(s0)}
        replicas: [${destination(s0replica)}]
      - name: s1
        primary: ${destination(s1)}
connections:
  timeoutMs: 5000
`)
const router = await startRouterProcess(t, configFile, START_TIMEOUT_MS)
const base = new URL(router.url)
const processes = [
  { name: 's0', child: s0.child, output: s0.output },
  { name: 's0.replica1', child: s0replica.child, output: s0replica.output },
  { name: 's1', child: s1.child, output: s1.output },
  { name: 'router', child: router.child, output: router.output },
]

await waitFor(async () => {
  const ready = await Promise.all([s0, s0replica, s1].map((shard) => fetch(`${shard.adminUrl}/readyz`).then((r) => r.ok, () => false)))
  const shards = await fetch(`${router.adminUrl}/admin/shards`).then((r) => r.json() as Promise<{ destinations: { knockedOut: boolean; connections: number }[] }>, () => null)
  return ready.every(Boolean) && shards !== null && shards.destinations.every((d) => !d.knockedOut && d.connections > 0)
}, START_TIMEOUT_MS, () => 'the cluster never became ready')

const worlds = new PossibleWorlds(EMPTY_WORLD, fingerprint)

// Every run ends by reading every key back, so a write the model missed cannot hide.
const readBack: HttpOp[] = VALID_KEYS.map((key) => {
  const read = key.paths.length > 0 ? getOp(key, key.paths[0]) : batchOp([{ op: 'get', key }])
  return labelled(read, `read back: ${read.label}`)
})

// Each run starts from empty shards (FLUSHALL reaches the replica through replication).
async function flushShards(log: RunLog): Promise<void> {
  checkAlive(processes, log)
  for (const shard of [s0, s1]) {
    const connection = await RespConnection.open(shard.port)
    const flushed = await connection.command(['FLUSHALL']).catch((error: Error) => error)
    connection.close()
    if (flushed instanceof Error) await checkAliveAfterLoss(processes, log)
    if (flushed instanceof Error || flushed.kind !== 'simple' || flushed.text !== 'OK') log.fail(`FLUSHALL before the run answered ${flushed instanceof Error ? flushed.message : formatReply(flushed)}`)
  }
}

async function runSequence(ops: HttpOp[], log: RunLog): Promise<void> {
  await flushShards(log)
  worlds.reset(EMPTY_WORLD)
  for (const op of [...ops, ...readBack]) {
    let response: HttpResponse
    try {
      response = await send(base, requestFor(op))
    } catch (error) {
      log.record(op.label, `no response: ${(error as Error).message}`)
      await checkAliveAfterLoss(processes, log)
      return log.fail(`${op.label}: no response (${(error as Error).message})`)
    }
    log.record(op.label, describeResponse(response))
    if (response.status >= 500) await checkAliveAfterLoss(processes, log)
    else checkAlive(processes, log)
    const problem = shapeProblem(op, response)
    if (problem) log.fail(`${op.label} answered ${problem}`)
    const allowed = worlds.advance(response, (world) => outcomes(world, op))
    if (allowed) log.fail(`${op.label} answered ${describeResponse(response)}; the model allows only: ${allowed.join(' | ')}`)
  }
}

function property(name: string, defaultRuns: number, weights: Partial<Record<OpFamily, number>>): void {
  t.test(name, async () => {
    await checkRuns(settings, name, defaultRuns, fc.array(opArbitrary(weights), { minLength: 3, maxLength: 25 }), runSequence)
  })
}

property('keys and values at the edges: sets, gets and deletes agree with a model', 25, { get: 6, set: 8, setRaw: 4, delete: 3, counter: 1, batch: 1 })
property('counters: increments at the number edges are exact; overflow and non-integers are refused', 50, { incr: 8, counter: 4, setCounter: 4, setRaw: 2, get: 2, delete: 1 })
property('batches mixing every kind of op, key, value and ttl', 25, { batch: 8, amplify: 2, setLarge: 1, get: 2, set: 2, incr: 2 })
property('everything at once', 25, { get: 6, set: 6, setCounter: 3, setLarge: 1, setRaw: 3, delete: 3, incr: 6, counter: 3, batch: 6, amplify: 2 })
