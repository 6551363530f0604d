// A primary and its replica as real shard processes, with ioredis clients, for the shard-level
// replication tests: started, linked both ways, and killed when the test ends.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, startShardProcess, waitFor, type ShardProcess, type Teardown } from './processes.ts'

// Short timeouts so that a stopped peer is noticed within a test's patience (but not so short
// that a peer busy applying a snapshot on this shared 2-core machine looks dead).
export const FAST = 'replication:\n  timeoutMs: 2000\n  heartbeatMs: 50\n'

export function configFile(yaml: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'shardline-repl-')), 'shard.yaml')
  writeFileSync(file, yaml)
  return file
}

export interface Pair {
  primary: ShardProcess
  replica: ShardProcess
  primaryArgs: string[]
  /** readyCheck false: a client that sends at once and sees every reply (-LOADING too) as the shard sent it. */
  client(shard: ShardProcess, options?: { readyCheck?: boolean }): Redis
}

export async function startPair(t: Teardown, yaml = FAST): Promise<Pair> {
  const [primaryPort, replicaPort] = [await freePort(), await freePort()]
  const config = configFile(yaml)
  const primaryArgs = ['--name', 'p', '--port', String(primaryPort), '--replicas', `127.0.0.1:${replicaPort}`, '--config', config]
  const [primary, replica] = await Promise.all([
    startShardProcess(t, primaryArgs),
    startShardProcess(t, ['--name', 'r', '--port', String(replicaPort), '--replicaof', `127.0.0.1:${primaryPort}`, '--config', config]),
  ])
  // A primary with replicas warms up from one before it answers (-LOADING until then), and the
  // replica may have tried its primary before it listened: wait for both links.
  await waitFor(async () => (await fetch(`${primary.adminUrl}/readyz`)).status === 200, 10_000, () => 'the primary to finish warming up')
  await waitFor(async () => (await stats(replica)).upstream.state === 'streaming', 10_000, () => 'the replica to stream from its primary')
  const client = (shard: ShardProcess, { readyCheck = true } = {}) => {
    const redis = new Redis({ port: shard.port, host: '127.0.0.1', maxRetriesPerRequest: 0, enableReadyCheck: readyCheck, retryStrategy: () => 50 })
    t.teardown(() => redis.disconnect())
    return redis
  }
  return { primary, replica, primaryArgs, client }
}

export const digest = async (redis: Redis) => (await redis.call('SL.DIGEST')) as [number, string]
export const stats = async (shard: ShardProcess) => (await (await fetch(`${shard.adminUrl}/stats`)).json()).replication

export async function converged(a: Redis, b: Redis, timeoutMs = 10_000): Promise<[number, string]> {
  let last: unknown = null
  return waitFor(async () => {
    const [one, two] = await Promise.all([digest(a), digest(b)])
    last = [one, two]
    return one[1] === two[1] ? one : null
  }, timeoutMs, () => `primary and replica digests to be equal; last seen ${JSON.stringify(last)}`)
}
