// The local cluster's start of a shard group (a primary and its replica, which name each other's
// ports on their command lines) when another process takes a port picked for it: started again on
// new ports and wired to each other there; a clear error when that keeps happening or a fixed port is in use.
import t from 'tap'
import { once } from 'node:events'
import net from 'node:net'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { freePort, PORT_ATTEMPTS, startShardGroup, type ShardGroupStart } from '../../cli/cluster-command.ts'
import type { SupervisedChild } from '../../cli/child-process.ts'
import { waitFor, type Teardown } from '../helpers/processes.ts'

const LOOPBACK_ANY_PORT = { address: { host: '127.0.0.1', port: 0 } }

/** A port another process holds for the whole test: what a test running in parallel does. */
async function takenPort(t: Teardown): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return (server.address() as net.AddressInfo).port
}

/** startShardGroup's inputs, keeping every process it started and every warning it logged. */
function groupStart(t: Teardown, shard: ShardGroupStart['shard'], pickPort: ShardGroupStart['pickPort']) {
  const everyChild: SupervisedChild[] = []
  const children = new Set<SupervisedChild>()
  const add = children.add.bind(children)
  children.add = (child) => {
    everyChild.push(child)
    return add(child)
  }
  const warnings: Array<{ port: number; attempt: number }> = []
  const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) })
  t.teardown(() => Promise.all(everyChild.map((child) => child.stop('SIGKILL'))))
  const start: ShardGroupStart = { pool: 'main', shard, flags: ['--max-memory', '16mb'], env: { ...process.env, SHARDLINE_LOG_FORMAT: 'json' }, log, children, pickPort }
  return { start, everyChild, children, warnings }
}

const isRunning = (pid: number | undefined) => {
  try {
    process.kill(pid!, 0)
    return true
  } catch {
    return false
  }
}

t.test('a group whose picked port another process took starts again on new ports, primary and replica wired there', async (t) => {
  const taken = await takenPort(t)
  const picks: number[] = []
  // The first pick is a port that is taken by the time the primary binds it.
  const group = groupStart(t, { name: 'a', primary: LOOPBACK_ANY_PORT, replicas: [LOOPBACK_ANY_PORT] }, async (host) => {
    const port = picks.length === 0 ? taken : await freePort(host)
    picks.push(port)
    return port
  })
  const [primary, replica] = await startShardGroup(group.start)
  t.equal(picks.length, 4, 'two ports picked for each of two starts')
  t.not(primary!.address, `127.0.0.1:${taken}`, `the primary listens on a new port (${primary!.address})`)
  t.match(group.warnings, [{ port: taken, attempt: 1 }], 'the second start is logged with the taken port')
  t.equal(group.children.size, 2, 'the group is a primary and a replica')
  const [firstPrimary, firstReplica] = group.everyChild
  t.ok(!isRunning(firstPrimary.pid) && !isRunning(firstReplica.pid), 'the first start\'s processes are gone')
  const [, secondReplica] = [...group.children]
  t.equal(secondReplica.args[secondReplica.args.indexOf('--replicaof') + 1], primary!.address, 'the replica follows the primary\'s new address')

  // Replication works on the new ports: a write to the primary reaches the replica.
  const redis = (address: string) => new Redis({ host: '127.0.0.1', port: Number(address.split(':')[1]), lazyConnect: true, maxRetriesPerRequest: 1 })
  const [toPrimary, toReplica] = [redis(primary!.address), redis(replica!.address)]
  t.teardown(() => [toPrimary, toReplica].forEach((client) => client.disconnect()))
  t.equal(await toPrimary.set('greeting', 'hello'), 'OK')
  t.equal(await waitFor(() => toReplica.get('greeting'), 10_000, () => 'the write never reached the replica'), 'hello')
})

t.test(`a port taken at every start: a clear error after ${PORT_ATTEMPTS} starts, nothing left running`, async (t) => {
  const taken = await takenPort(t)
  let picks = 0
  const group = groupStart(t, { name: 'b', primary: LOOPBACK_ANY_PORT, replicas: [] }, async () => {
    picks++
    return taken
  })
  await t.rejects(startShardGroup(group.start), { message: new RegExp(`^shard main/b: another process took a port picked for it before it could listen, ${PORT_ATTEMPTS} times \\(last 127\\.0\\.0\\.1:${taken}\\)$`) })
  t.equal(picks, PORT_ATTEMPTS)
  t.equal(group.warnings.length, PORT_ATTEMPTS - 1, 'each start but the last is logged')
  t.equal(group.children.size, 0, 'no process is left to the cluster')
  t.ok(group.everyChild.every((child) => !isRunning(child.pid)), 'every process started is gone')
})

t.test('a fixed port in use fails at once, naming the port', async (t) => {
  const taken = await takenPort(t)
  const group = groupStart(t, { name: 'c', primary: { address: { host: '127.0.0.1', port: taken } }, replicas: [] }, async () => t.fail('no port to pick') as never)
  await t.rejects(startShardGroup(group.start), { message: `main/c exited (1) before it was ready: 127.0.0.1:${taken} is in use by another process` })
  t.equal(group.everyChild.length, 1, 'one start, no retry')
  t.same(group.warnings, [])
})
