// A destination against a scripted RESP server: pipelined replies, per-op timeouts (504), the
// bounded queue (503), the health monitor's knock-outs, probes, re-admission and pool cap, and
// failover that never repeats an increment which may have been applied (outcome_unknown).
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { createLogger } from '../../common/logger.ts'
import { RespRequestParser } from '../../common/resp-request-parser.ts'
import { CounterBatcher } from '../../router/counter-batcher.ts'
import { HealthMonitor } from '../../router/health-monitor.ts'
import { FailoverRoute } from '../../router/routes/failover-route.ts'
import { ShardDestination } from '../../router/shard-destination.ts'
import { ShardReplyLostError, ShardTimeoutError } from '../../router/errors.ts'
import { freePort, waitFor } from '../helpers/processes.ts'

/** What a scripted server does with one command: reply with these bytes, or hang up without a reply. */
type Script = (command: string[]) => string | 'hang up'

const answerPing: Script = (command) => command[0] === 'PING' ? '+PONG\r\n' : ':1\r\n'

/** A RESP server that answers as its script says (PING with PONG and anything else with :1), or stays silent. */
async function scriptedServer(t: { teardown(fn: () => unknown): void }, script: Script = answerPing) {
  // reads: per command, which connection (in accept order) and which read of it brought it.
  const state = { silent: false, commands: 0, received: [] as string[][], reads: [] as Array<{ connection: number; read: number }> }
  const sockets = new Set<net.Socket>()
  let accepted = 0
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    const parser = new RespRequestParser()
    const connection = accepted++
    let read = 0
    socket.on('data', (chunk) => {
      parser.push(chunk, (args) => {
        state.commands++
        state.reads.push({ connection, read })
        const command = args.map((arg) => arg.toString('latin1'))
        state.received.push(command)
        if (state.silent) return
        const reply = script(command)
        if (reply === 'hang up') socket.destroy()
        else socket.write(reply)
      })
      read++
    })
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  return { state, port: (server.address() as net.AddressInfo).port }
}

const connections = { perDestination: 1, timeoutMs: 150, connectTimeoutMs: 500, maxQueue: 4 }
const health = { heartbeatMs: 30, failuresBeforeKnockout: 3, probeInitialMs: 20, probeMaxMs: 100, maxKnockedOutFraction: 0.5 }
const log = createLogger('test', 'silent')

function destination(t: { teardown(fn: () => unknown): void }, port: number, shard = 's0', index = 0, settings = connections) {
  const d = new ShardDestination({ pool: 'main', shard, role: index === 0 ? 'primary' : 'replica', index, endpoint: { host: '127.0.0.1', port } }, settings, { tls: null, password: null })
  t.teardown(() => d.close())
  return d
}

t.test('commands pipeline over the connection and resolve in order', async (t) => {
  const server = await scriptedServer(t)
  const d = destination(t, server.port)
  const replies = await Promise.all([d.send(['PING']), d.send(['DEL', 'k']), d.send(['PING'])])
  t.same(replies, ['PONG', 1, 'PONG'])
  t.equal(d.connected, 1)
})

t.test('the commands of one turn leave in one write on one connection; turns take the connections in turn', async (t) => {
  const server = await scriptedServer(t)
  const d = destination(t, server.port, 's0', 0, { ...connections, perDestination: 3, maxQueue: 100 })
  await waitFor(() => d.connected === 3, 5000, () => `${d.connected} of 3 connections up`)
  const turn = async (first: number) => {
    const replies = await Promise.all(Array.from({ length: 5 }, (_, i) => d.send(['DEL', `k${first + i}`])))
    t.same(replies, [1, 1, 1, 1, 1])
  }
  for (let i = 0; i < 3; i++) await turn(i * 5)
  const turns = [0, 1, 2].map((i) => server.state.reads.slice(i * 5, i * 5 + 5))
  for (const reads of turns) t.same(reads, Array(5).fill(reads[0]), 'one connection, one read')
  t.same(new Set(turns.map((reads) => reads[0].connection)).size, 3, 'three turns, three connections')
})

t.test('a shard that does not answer gets a 504 after the op timeout; the queue is bounded (503)', async (t) => {
  const server = await scriptedServer(t)
  const d = destination(t, server.port)
  await d.send(['PING'])
  server.state.silent = true
  const started = Date.now()
  const pending = [d.send(['GET', 'a']), d.send(['GET', 'b']), d.send(['GET', 'c']), d.send(['GET', 'd'])]
  await t.rejects(d.send(['GET', 'e']), { statusCode: 503, code: 'queue_full' })
  await t.rejects(pending[0], { statusCode: 504, code: 'shard_timeout' })
  // The timeout resets the connection: an op whose deadline fell a millisecond later (a busy
  // machine) fails with the lost connection instead, never with an answer.
  for (const op of pending.slice(1)) {
    const error = await op.then(() => null, (e: unknown) => e)
    t.ok(error instanceof ShardTimeoutError || error instanceof ShardReplyLostError, `failed as timed out or lost: ${String(error)}`)
  }
  t.ok(Date.now() - started >= 140, 'not before the timeout')
})

t.test('heartbeats knock out a hung shard, probes re-admit it when it answers again', async (t) => {
  const server = await scriptedServer(t)
  const d = destination(t, server.port)
  const knockedOut: string[] = []
  const monitor = new HealthMonitor(health, [d], log, (x) => knockedOut.push(x.name))
  t.teardown(() => monitor.stop())
  await d.send(['PING'])
  server.state.silent = true
  await waitFor(() => d.health.knockedOut, 5000, () => 'never knocked out')
  t.same(knockedOut, ['main/s0/primary'])
  t.ok(d.health.consecutiveFailures >= 3)
  server.state.silent = false
  await waitFor(() => !d.health.knockedOut, 5000, () => 'never re-admitted')
  t.equal(d.health.knockouts, 1)
})

t.test('a refused connection knocks out at once; the per-pool cap keeps half the pool in', async (t) => {
  // A port nothing listens on: connections to it are refused.
  const port = await freePort()
  const a = destination(t, port, 'a')
  const b = destination(t, port, 'b')
  const monitor = new HealthMonitor({ ...health, heartbeatMs: 10_000 }, [a, b], log, () => {})
  t.teardown(() => monitor.stop())
  await waitFor(() => a.health.knockedOut || b.health.knockedOut, 5000)
  await t.rejects(Promise.all([a.send(['PING']), b.send(['PING'])]), { code: 'shard_unavailable' })
  await waitFor(() => a.health.lastError && b.health.lastError, 5000)
  t.equal([a, b].filter((d) => d.health.knockedOut).length, 1, 'only one of two: the cap is half the pool')
})

/** Answers as a replica holding every key: a value for SL.GETV, :1 for writes, 7 for INCRBY. */
const replicaScript: Script = (command) => {
  switch (command[0]) {
    case 'PING': return '+PONG\r\n'
    case 'SL.GETV': return '*4\r\n$7\r\nreplica\r\n:5\r\n:0\r\n:-1\r\n'
    case 'INCRBY': return ':7\r\n'
    default: return ':1\r\n'
  }
}

/** A primary that acts as its script says and a replica that answers, behind one failover route. */
async function failoverPair(t: { teardown(fn: () => unknown): void }, primaryScript: Script, primaryPort?: number) {
  const primary = await scriptedServer(t, primaryScript)
  const replica = await scriptedServer(t, replicaScript)
  const destinations = [destination(t, primaryPort ?? primary.port, 's0', 0), destination(t, replica.port, 's0', 1)]
  const sent = (server: typeof primary, name: string) => server.state.received.filter((command) => command[0] === name).length
  return { primary, replica, destinations, route: new FailoverRoute('s0', destinations), sent }
}

const hangUpUnlessPing: Script = (command) => command[0] === 'PING' ? '+PONG\r\n' : 'hang up'

t.test('a connection lost after an INCRBY was written: outcome_unknown, never sent to the replica; reads and versioned writes fail over', async (t) => {
  const { primary, replica, destinations, route, sent } = await failoverPair(t, hangUpUnlessPing)
  const primaryConnected = () => waitFor(() => destinations[0].connected === 1, 5000, () => 'the primary connection never came back')
  await primaryConnected()
  await t.rejects(route.route({ kind: 'incr', key: 'visits', by: 1n }), { statusCode: 503, code: 'outcome_unknown', message: /may or may not have been applied and was not retried/ })
  t.equal(sent(primary, 'INCRBY'), 1, 'the primary received the increment')
  t.equal(sent(replica, 'INCRBY'), 0, 'the replica never did')

  await primaryConnected()
  t.same(await route.route({ kind: 'get', key: 'k' }), { kind: 'get', found: true, value: Buffer.from('replica'), version: 5, flags: 0, ttlMs: -1 })
  t.equal(sent(primary, 'SL.GETV'), 1, 'the get was written to the primary before failing over')
  await primaryConnected()
  t.same(await route.route({ kind: 'set', key: 'k', value: Buffer.from('v'), flags: 0, version: 9 }), { kind: 'set', stored: true })
  await primaryConnected()
  t.same(await route.route({ kind: 'delete', key: 'k', version: 10 }), { kind: 'delete', deleted: true })
  t.same([sent(primary, 'SL.SETV'), sent(primary, 'SL.DELV'), sent(replica, 'SL.SETV'), sent(replica, 'SL.DELV')], [1, 1, 1, 1])
})

t.test('a hot counter batch whose INCRBY outcome is unknown fails every waiter with outcome_unknown and is not re-applied', async (t) => {
  const { primary, replica, route, sent, destinations } = await failoverPair(t, hangUpUnlessPing)
  await waitFor(() => destinations[0].connected === 1, 5000)
  const batcher = new CounterBatcher({
    windowMs: 10,
    apply: async (key, delta) => {
      await route.route({ kind: 'incr', key, by: delta })
    },
    onBatch: () => {},
  })
  const waiters = [batcher.add('hot', 1n), batcher.add('hot', 2n), batcher.add('hot', 3n)]
  for (const waiter of waiters) await t.rejects(waiter, { code: 'outcome_unknown' })
  t.same(primary.state.received.filter((command) => command[0] === 'INCRBY'), [['INCRBY', 'hot', '6']], 'one summed INCRBY')
  t.equal(sent(replica, 'INCRBY'), 0)
})

t.test('an unreadable reply fails only its op and resets the connection without knocking the destination out', async (t) => {
  let garbled = false
  const { primary, replica, destinations, route, sent } = await failoverPair(t, (command) => {
    if (command[0] === 'PING') return '+PONG\r\n'
    if (command[0] === 'INCRBY' && !garbled) {
      garbled = true
      return ':12a\r\n'
    }
    return command[0] === 'INCRBY' ? ':9223372036854775807\r\n' : replicaScript(command)
  })
  const monitor = new HealthMonitor({ ...health, heartbeatMs: 10_000 }, destinations, log, () => {})
  t.teardown(() => monitor.stop())
  await waitFor(() => destinations[0].connected === 1, 5000)
  // Both leave in one write: the get's reply, after the unreadable one, is lost with the connection.
  const [incr, get] = await Promise.allSettled([route.route({ kind: 'incr', key: 'n', by: 1n }), route.route({ kind: 'get', key: 'k' })])
  t.match(incr, { status: 'rejected', reason: { statusCode: 502, code: 'shard_error', message: /unreadable reply \(invalid integer in reply: "12a"\)/ } })
  t.match(get, { status: 'fulfilled', value: { found: true, value: Buffer.from('replica') } }, 'the get failed over')
  t.equal(sent(replica, 'INCRBY'), 0, 'the increment was not retried')
  t.match(destinations[0].health, { knockedOut: false, knockouts: 0, lastError: /unreadable reply|invalid integer/ })

  await waitFor(() => destinations[0].connected === 1, 5000, () => 'the connection was not re-opened')
  t.same(await route.route({ kind: 'incr', key: 'n', by: 1n }), { kind: 'incr', value: 2n ** 63n - 1n }, 'a reply past 2^53 reads exactly')
  t.equal(sent(primary, 'INCRBY'), 2)
  t.equal(destinations[0].health.knockouts, 0)
})

t.test('a reply without a request resets the connection without knocking the destination out', async (t) => {
  const server = await scriptedServer(t, (command) => command[0] === 'PING' ? '+PONG\r\n' : ':1\r\n:2\r\n')
  const d = destination(t, server.port)
  const monitor = new HealthMonitor({ ...health, heartbeatMs: 10_000 }, [d], log, () => {})
  t.teardown(() => monitor.stop())
  t.equal(await d.send(['INCRBY', 'n', '1']), 1)
  await waitFor(() => d.health.lastError, 5000, () => 'the extra reply went unnoticed')
  t.match(d.health, { knockedOut: false, knockouts: 0, lastError: /a reply without a request/ })
  await waitFor(() => d.connected === 1, 5000, () => 'the connection was not re-opened')
  t.equal(await d.send(['PING']), 'PONG')
})

t.test('a command never sent fails over, increments included: a refused connection, a -LOADING reply', async (t) => {
  const refusedPort = await freePort()
  const refused = await failoverPair(t, answerPing, refusedPort)
  t.same(await refused.route.route({ kind: 'incr', key: 'visits', by: 1n }), { kind: 'incr', value: 7n })
  t.equal(refused.sent(refused.replica, 'INCRBY'), 1, 'applied once, on the replica')

  const loading = await failoverPair(t, (command) => command[0] === 'PING' ? '+PONG\r\n' : '-LOADING the shard is warming up\r\n')
  t.same(await loading.route.route({ kind: 'incr', key: 'visits', by: 1n }), { kind: 'incr', value: 7n })
  t.same([loading.sent(loading.primary, 'INCRBY'), loading.sent(loading.replica, 'INCRBY')], [1, 1])
})

t.test('overflow and a value that is not an integer answer 409 from the shard\'s own errors', async (t) => {
  const { route } = await failoverPair(t, (command) => command[1] === 'big'
    ? '-ERR increment or decrement would overflow\r\n'
    : command[0] === 'INCRBY' ? '-ERR value is not an integer or out of range\r\n' : '$19\r\n9223372036854775808\r\n')
  await t.rejects(route.route({ kind: 'incr', key: 'big', by: 1n }), { statusCode: 409, code: 'counter_overflow' })
  await t.rejects(route.route({ kind: 'incr', key: 'words', by: 1n }), { statusCode: 409, code: 'not_a_counter' })
  await t.rejects(route.route({ kind: 'counter', key: 'past-int64' }), { statusCode: 409, code: 'not_a_counter' })
})
