// HTTP mode through a primary's kill -9 mid-load (a primary and its replica behind a real router): every get
// and set succeeds across the failover, and the counter ends within what was sent and what was acknowledged.
import t from 'tap'
import { createClient, ShardlineError } from '../../client/index.ts'
import { waitFor } from '../helpers/processes.ts'
import { sampleReplicationLag, startReplicatedCluster } from '../helpers/replicated-cluster.ts'

t.setTimeout(120_000)

interface Increment {
  invokedAt: number
  completedAt: number
  acked: boolean
  outcome: string
}

t.test('a primary killed mid-load: idempotent calls succeed after failover, increments are never doubled', async (t) => {
  const cluster = await startReplicatedCluster(t)
  const [{ primary }] = cluster.pairs
  // Retries cover a 503 while the router knocks the dead primary out; most calls never need one, as the
  // router itself fails reads and versioned writes over to the replica when the primary refuses or drops them.
  const client = createClient({ url: cluster.router.url, retries: 6, timeoutMs: 10_000 })
  t.teardown(() => client.close())

  let running = true
  let idempotentDone = 0
  const failures: string[] = []
  const increments: Increment[] = []
  const readerWriter = async (worker: number) => {
    for (let seq = 0; running; seq++) {
      const key = `w${worker}-k${seq % 16}`
      try {
        await client.set(key, `${key}#${seq}`)
        await client.mget([key, `w${worker}-k${(seq + 1) % 16}`])
        idempotentDone++
      } catch (error) {
        failures.push(`${key}: ${error instanceof ShardlineError ? error.code : ''} ${(error as Error).message}`)
      }
    }
  }
  const incrementer = async () => {
    while (running) {
      const increment: Increment = { invokedAt: Date.now(), completedAt: 0, acked: false, outcome: 'ok' }
      increments.push(increment)
      try {
        await client.incr('hits')
        increment.acked = true
      } catch (error) {
        increment.outcome = error instanceof ShardlineError ? error.code : String(error)
      }
      increment.completedAt = Date.now()
    }
  }
  const lag = sampleReplicationLag(primary)
  const loops = [...[0, 1, 2, 3].map(readerWriter), ...[0, 1, 2, 3].map(incrementer)]
  const acked = () => increments.filter((increment) => increment.acked).length
  await waitFor(() => idempotentDone >= 300 && acked() >= 200, 30_000, () => `load before the kill: ${idempotentDone} gets and sets, ${acked()} increments`)

  const stopSampling = lag.stop()
  const killedAt = Date.now()
  await primary.kill()
  await stopSampling
  const doneAtKill = idempotentDone
  const ackedAtKill = acked()
  await waitFor(() => idempotentDone >= doneAtKill + 300 && acked() >= ackedAtKill + 200, 30_000, () => `load after the kill: ${idempotentDone - doneAtKill} gets and sets, ${acked() - ackedAtKill} increments\n${cluster.outputTails()}`)
  running = false
  await Promise.all(loops)
  t.ok((await cluster.routerView(primary)).knockedOut, 'the router failed over to the replica')

  t.same(failures, [], `every get and set succeeded (${idempotentDone} rounds)`)
  const total = await client.counter('hits')
  // Replication is asynchronous: increments the primary acknowledged within the replication lag before
  // the kill may not have reached the replica, which serves the counter now (a sample can miss a spike
  // shorter than the replica's acknowledgement heartbeat, hence that slack, as in test/cluster/).
  const windowMs = Math.max(0, ...lag.samples) * 1000 + cluster.replicationSettings.heartbeatMs
  const mayBeLost = increments.filter((increment) => increment.acked && increment.invokedAt < killedAt && increment.completedAt >= killedAt - windowMs).length
  const outcomes = Object.groupBy(increments.filter((increment) => !increment.acked), (increment) => increment.outcome)
  t.comment(`increments: ${increments.length} sent, ${acked()} acknowledged (${mayBeLost} in the ${windowMs.toFixed(0)} ms lag window), failed ${JSON.stringify(Object.fromEntries(Object.entries(outcomes).map(([code, list]) => [code, list!.length])))}; total ${total}`)
  // Each increment is applied at most once: the client sends it once (never again, whatever the answer),
  // and the router never sends one whose reply was lost to the replica (outcome_unknown).
  t.ok(total <= BigInt(increments.length), `never doubled: the total ${total} is at most the ${increments.length} increments sent`)
  // And every acknowledged one is in it, except those the replica may not have received before the kill.
  t.ok(total >= BigInt(acked() - mayBeLost), `the total ${total} holds the ${acked()} acknowledged increments, less at most the ${mayBeLost} in the lag window`)
})
