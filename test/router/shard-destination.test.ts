// A destination against a scripted RESP server: pipelined replies, per-op timeouts (504), the
// bounded queue (503), and the health monitor's knock-outs, probes, re-admission and pool cap.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { createLogger } from '../../common/logger.ts'
import { RespRequestParser } from '../../common/resp-request-parser.ts'
import { HealthMonitor } from '../../router/health-monitor.ts'
import { ShardDestination } from '../../router/shard-destination.ts'
import { waitFor } from '../helpers/processes.ts'

/** A RESP server that answers PING with PONG and anything else with :1, or stays silent. */
async function scriptedServer(t: { teardown(fn: () => unknown): void }) {
  const state = { silent: false, commands: 0 }
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    const parser = new RespRequestParser()
    socket.on('data', (chunk) => parser.push(chunk, (args) => {
      state.commands++
      if (!state.silent) socket.write(args[0].toString() === 'PING' ? '+PONG\r\n' : ':1\r\n')
    }))
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

function destination(t: { teardown(fn: () => unknown): void }, port: number, shard = 's0') {
  const d = new ShardDestination({ pool: 'main', shard, role: 'primary', index: 0, endpoint: { host: '127.0.0.1', port } }, connections)
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

t.test('a shard that does not answer gets a 504 after the op timeout; the queue is bounded (503)', async (t) => {
  const server = await scriptedServer(t)
  const d = destination(t, server.port)
  await d.send(['PING'])
  server.state.silent = true
  const started = Date.now()
  const pending = [d.send(['GET', 'a']), d.send(['GET', 'b']), d.send(['GET', 'c']), d.send(['GET', 'd'])]
  await t.rejects(d.send(['GET', 'e']), { statusCode: 503, code: 'queue_full' })
  for (const op of pending) await t.rejects(op, { statusCode: 504, code: 'shard_timeout' })
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
  const closed = net.createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const port = (closed.address() as net.AddressInfo).port
  closed.close()
  const a = destination(t, port, 'a')
  const b = destination(t, port, 'b')
  const monitor = new HealthMonitor({ ...health, heartbeatMs: 10_000 }, [a, b], log, () => {})
  t.teardown(() => monitor.stop())
  await waitFor(() => a.health.knockedOut || b.health.knockedOut, 5000)
  await t.rejects(Promise.all([a.send(['PING']), b.send(['PING'])]), { code: 'shard_unavailable' })
  await waitFor(() => a.health.lastError && b.health.lastError, 5000)
  t.equal([a, b].filter((d) => d.health.knockedOut).length, 1, 'only one of two: the cap is half the pool')
})
