// The router's RESP front in-process over an in-memory route tree: commands and their Redis-worded
// errors (bad EX values, arity, unknown commands, keys, counters), pipelining in order and its bound,
// the response budget, route errors, protocol errors, the connection cap and idle connections.
import t from 'tap'
import net from 'node:net'
import { HybridLogicalClock } from '../../common/hlc.ts'
import { createLogger } from '../../common/logger.ts'
import { RespErrorReply, RespReplyParser, type RespReply } from '../../common/resp-reply-parser.ts'
import { parseRouterConfig } from '../../router/config.ts'
import { NoHealthyDestinationError, OutcomeUnknownError } from '../../router/errors.ts'
import { RouterMetrics } from '../../router/metrics.ts'
import { ResponseBudget } from '../../router/response-budget.ts'
import { RespFront } from '../../router/resp-front.ts'
import type { RouteTree } from '../../router/route-tree.ts'
import type { Op, OpResult } from '../../router/routes/route.ts'
import { waitFor } from '../helpers/processes.ts'

const config = parseRouterConfig(`pools:
  main:
    shards: [{ name: s0, primary: 127.0.0.1:1 }]
limits:
  maxValueBytes: 1024
  maxBatchOps: 10
  maxBatchResponseBytes: 2048
  maxInFlightResponseBytes: 2048
  maxRespPipeline: 8
  maxRespConnections: 4
  idleTimeoutMs: 300
`, 'test.yaml')

const stored = new Map<string, { value: Buffer; expiresAt: number }>()
const counters = new Map<string, bigint>()
let routing = 0
let mostRouting = 0
/** Ops on these keys wait until the test opens their gate. */
let gate: Promise<void> | null = null
const tree = {
  config,
  access: { open: true },
  async route(op: Op): Promise<OpResult> {
    mostRouting = Math.max(mostRouting, ++routing)
    try {
      // Replies come back in another order than asked, as from several shards.
      if (op.key.startsWith('gated') && gate) await gate
      else await new Promise((resolve) => setTimeout(resolve, Math.random() * 3))
      return apply(op)
    } finally {
      routing--
    }
  },
} as unknown as RouteTree

function apply(op: Op): OpResult {
  if (op.key === 'down') throw new NoHealthyDestinationError('s0')
  if (op.key === 'lost') throw new OutcomeUnknownError('s0', 'increment', 'connection closed')
  if (op.key === 'boom') throw new Error('a bug in the route tree')
  const entry = stored.get(op.key)
  switch (op.kind) {
    case 'get':
      return entry ? { kind: 'get', found: true, value: entry.value, flags: 0, version: 1, ttlMs: -1 } : { kind: 'get', found: false }
    case 'set':
      if ((op.condition === 'nx' && entry) || (op.condition === 'xx' && !entry)) return { kind: 'set', stored: false }
      stored.set(op.key, { value: op.value, expiresAt: op.ttlMs === undefined ? 0 : Date.now() + op.ttlMs })
      return { kind: 'set', stored: true }
    case 'delete':
      return { kind: 'delete', deleted: stored.delete(op.key) }
    case 'incr': {
      const value = (counters.get(op.key) ?? 0n) + op.by
      counters.set(op.key, value)
      return { kind: 'incr', value }
    }
    case 'counter':
      return { kind: 'counter', value: counters.get(op.key) ?? 0n }
    case 'expire':
      if (!entry) return { kind: 'expire', applied: false }
      entry.expiresAt = Date.now() + op.ttlMs
      return { kind: 'expire', applied: true }
    case 'ttl':
      return { kind: 'ttl', ttlMs: entry ? (entry.expiresAt === 0 ? -1 : entry.expiresAt - Date.now()) : -2 }
  }
}

const budget = new ResponseBudget()
const front = new RespFront({
  log: createLogger('test', 'silent'),
  clock: new HybridLogicalClock(),
  metrics: new RouterMetrics(() => [], () => 1),
  budget,
  limits: config.limits,
  tree: () => tree,
})
const { port } = await front.listen('127.0.0.1', 0)

/** A raw connection: writes bytes, reads replies (errors as RespErrorReply values), sees the close. */
class Client {
  readonly socket: net.Socket
  readonly replies: RespReply[] = []
  closed = false
  private readonly parser = new RespReplyParser()

  constructor() {
    this.socket = net.connect({ port, host: '127.0.0.1' })
    this.socket.on('data', (chunk: Buffer) => this.parser.push(chunk, (reply) => this.replies.push(reply)))
    this.socket.on('error', () => {})
    this.socket.on('close', () => (this.closed = true))
  }

  /** Sends commands (each an array of arguments) in one write and waits for their replies. */
  async call(...commands: Array<Array<string | Buffer>>): Promise<RespReply[]> {
    const from = this.replies.length
    this.socket.write(Buffer.concat(commands.map(encode)))
    await waitFor(() => this.replies.length >= from + commands.length || this.closed, 5000, () => `${commands.length} replies`)
    return this.replies.slice(from)
  }

  close(): void {
    this.socket.destroy()
  }
}

function encode(args: Array<string | Buffer>): Buffer {
  return Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap((arg) => {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(arg)
    return [Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n')]
  })])
}

const errorText = (reply: RespReply) => (reply instanceof RespErrorReply ? reply.message : `not an error: ${String(reply)}`)
// Connections idle past idleTimeoutMs are closed: the test's client is opened again when it was.
let client = new Client()
const live = () => (client.closed ? (client = new Client()) : client)
/**
 * One command's reply. The front may close the shared connection for idleness just as a command is
 * written (before the client has seen the close): closed with no reply, the command was never read,
 * so it goes again on a new connection, as a Redis client does.
 */
const one = async (...args: string[]) => {
  const [reply] = await live().call(args)
  return reply === undefined && client.closed ? (await live().call(args))[0] : reply
}

t.test('the string and key commands answer as Redis does', async (t) => {
  t.equal(await one('PING'), 'PONG')
  t.same(await one('ping', 'hi'), Buffer.from('hi'))
  t.equal(await one('SET', 'a', 'hello'), 'OK')
  t.same(await one('GET', 'a'), Buffer.from('hello'))
  t.equal(await one('GET', 'missing'), null)
  t.equal(await one('SET', 'a', 'x', 'NX'), null, 'NX on a present key: not stored')
  t.equal(await one('SET', 'b', 'x', 'XX'), null, 'XX on a missing key: not stored')
  t.equal(await one('SET', 'b', 'y', 'nx', 'ex', '100'), 'OK')
  t.equal(await one('TTL', 'b'), 100)
  t.ok((await one('PTTL', 'b')) as number > 99_000)
  t.equal(await one('TTL', 'a'), -1)
  t.equal(await one('TTL', 'missing'), -2)
  t.equal(await one('EXISTS', 'a', 'b', 'missing', 'a'), 3, 'a key named twice counts twice')
  t.equal(await one('MSET', 'k1', 'v1', 'k2', 'v2'), 'OK')
  t.same(await one('MGET', 'k1', 'missing', 'k2'), [Buffer.from('v1'), null, Buffer.from('v2')])
  t.equal(await one('DEL', 'k1', 'k2', 'missing'), 2)
  t.equal(await one('EXPIRE', 'missing', '10'), 0)
  t.equal(await one('PEXPIRE', 'a', '5000'), 1)
  t.equal(await one('SELECT', '0'), 'OK')
  t.equal(errorText(await one('SELECT', '1')), 'ERR DB index is out of range (shardline has database 0 only)')
  t.equal(await one('CLIENT', 'SETNAME', 'me'), 'OK')
  t.same(await one('COMMAND', 'DOCS'), [])
  t.same(await one('CONFIG', 'GET', 'save'), [Buffer.from('save'), Buffer.from('')])
  t.same(await one('ECHO', 'x'), Buffer.from('x'))
  t.match((await one('INFO') as Buffer).toString(), /^# Server\r\nredis_version:7\.0\.0\r\nshardline_version:[\d.]+\r\n[\s\S]*connected_clients:\d+\r\n$/)
})

t.test('HELLO 2 answers its map as a flat array; HELLO 3 is refused', async (t) => {
  const hello = await one('HELLO', '2', 'SETNAME', 'me') as RespReply[]
  t.same(hello.slice(0, 6), [Buffer.from('server'), Buffer.from('redis'), Buffer.from('version'), Buffer.from('7.0.0'), Buffer.from('proto'), 2])
  t.equal(errorText(await one('HELLO', '3')), 'NOPROTO sorry, this protocol version is not supported')
  t.equal(errorText(await one('HELLO', 'x')), 'ERR Protocol version is not an integer or out of range')
})

t.test('EX, PX and EXPIRE values out of range get Redis\'s errors and change nothing', async (t) => {
  const invalid = "ERR invalid expire time in 'set' command"
  const notInteger = 'ERR value is not an integer or out of range'
  const cases: Array<[string[], string]> = [
    [['EX', '0'], invalid],
    [['EX', '-1'], invalid],
    [['PX', '0'], invalid],
    [['EX', String(2 ** 53)], invalid],
    [['PX', String(2 ** 53)], invalid],
    [['EX', '9223372036854775807'], invalid],
    [['EX', '9223372036854775808'], notInteger],
    [['EX', '1e300'], notInteger],
    [['EX', '1.5'], notInteger],
    [['EX', 'ten'], notInteger],
    [['EX', ''], notInteger],
    [['EX'], 'ERR syntax error'],
    [['EX', '10', 'PX', '10'], 'ERR syntax error'],
    [['NX', 'XX'], 'ERR syntax error'],
    [['GET'], 'ERR syntax error'],
  ]
  for (const [options, expected] of cases) t.equal(errorText(await one('SET', 'range', 'v', ...options)), expected, `SET range v ${options.join(' ')}`)
  t.equal(await one('EXISTS', 'range'), 0, 'no refused SET stored anything')
  t.equal(await one('SET', 'range', 'v', 'EX', String(2 ** 31)), 'OK', '2^31 seconds (68 years) is within the 100-year bound')
  t.equal(errorText(await one('EXPIRE', 'range', String(2 ** 53))), "ERR invalid expire time in 'expire' command")
  t.equal(errorText(await one('PEXPIRE', 'range', 'soon')), notInteger)
  t.equal(await one('EXPIRE', 'range', '-1'), 1, 'a negative TTL applies (it deletes the key on a shard)')
})

t.test('arity, unknown commands, keys and values are checked before anything is routed', async (t) => {
  t.equal(errorText(await one('GET')), "ERR wrong number of arguments for 'get' command")
  t.equal(errorText(await one('GET', 'a', 'b')), "ERR wrong number of arguments for 'get' command")
  t.equal(errorText(await one('MSET', 'a', '1', 'b')), "ERR wrong number of arguments for 'mset' command")
  t.equal(errorText(await one('PING', 'a', 'b')), "ERR wrong number of arguments for 'ping' command")
  t.equal(errorText(await one('FLUSHALL', 'ASYNC')), "ERR unknown command 'FLUSHALL', with args beginning with: 'ASYNC' ")
  t.equal(errorText(await one('X\u0001Y')), "ERR unknown command 'X?Y', with args beginning with: ")
  t.equal(errorText(await one('GET', '')), 'ERR invalid key: empty')
  t.equal(errorText(await one('GET', 'k'.repeat(251))), 'ERR invalid key: 251 bytes, the limit is 250 (limits.maxKeyBytes)')
  t.equal(errorText(await one('GET', 'a\u0000h1')), 'ERR invalid key: control characters are not allowed', 'no client key can name a hot-key copy')
  t.equal(errorText(await one('SET', 'big', 'v'.repeat(1025))), 'ERR value too large: 1025 bytes, the limit is 1024 (limits.maxValueBytes)')
  t.equal(errorText(await one('MGET', ...Array.from({ length: 11 }, (_, i) => `k${i}`))), 'ERR too many keys: 11, the limit is 10 (limits.maxBatchOps)')
  t.equal(errorText(await one('MSET', 'ok', 'v', 'bad', 'v'.repeat(1025))), 'ERR value too large: 1025 bytes, the limit is 1024 (limits.maxValueBytes)')
  t.equal(await one('EXISTS', 'ok'), 0, 'an MSET with one bad pair stores none')
})

t.test('counters are exact signed 64-bit integers, with Redis\'s errors', async (t) => {
  t.equal(await one('INCR', 'n'), 1)
  t.equal(await one('INCRBY', 'n', '9223372036854775800'), 9223372036854775801n)
  t.equal(await one('DECR', 'n'), 9223372036854775800n)
  t.equal(await one('DECRBY', 'n', '-7'), 9223372036854775807n)
  t.equal(errorText(await one('DECRBY', 'n', '-9223372036854775808')), 'ERR increment or decrement would overflow')
  t.equal(errorText(await one('INCRBY', 'n', '9223372036854775808')), 'ERR value is not an integer or out of range')
  t.equal(errorText(await one('INCRBY', 'n', '1.0')), 'ERR value is not an integer or out of range')
})

t.test('route errors: -TRYAGAIN when nothing was applied, -ERR outcome_unknown when it may have been', async (t) => {
  t.match(errorText(await one('GET', 'down')), /^TRYAGAIN no_healthy_destination: /)
  t.match(errorText(await one('INCR', 'lost')), /^ERR outcome_unknown: /)
  t.equal(errorText(await one('GET', 'boom')), 'ERR internal error', 'a bug is logged, not sent, and crashes nothing')
  t.same(await one('GET', 'a'), Buffer.from('hello'), 'the connection goes on')
  const metrics = await front.options.metrics.registry.metrics()
  t.match(metrics, /shardline_router_resp_commands_total\{command="get",outcome="no_healthy_destination"\} 1/)
  t.match(metrics, /shardline_router_resp_commands_total\{command="incr",outcome="outcome_unknown"\} 1/)
})

t.test('1,000 commands in one write are answered in order, at most maxRespPipeline in flight', async (t) => {
  mostRouting = 0
  const commands = Array.from({ length: 500 }, (_, i) => [['SET', `p${i}`, `v${i}`], ['GET', `p${i}`]]).flat()
  const replies = await live().call(...commands)
  t.equal(replies.length, 1000)
  t.ok(replies.every((reply, i) => (i % 2 === 0 ? reply === 'OK' : Buffer.isBuffer(reply) && reply.toString() === `v${(i - 1) / 2}`)), 'each reply answers its own command')
  t.ok(mostRouting <= 8, `at most 8 commands were routed at once (${mostRouting})`)
})

t.test('a connection whose pipeline is full is not read until replies go out', async (t) => {
  let open!: () => void
  gate = new Promise((resolve) => (open = resolve))
  const other = new Client()
  t.teardown(() => other.close())
  const pending = other.call(...Array.from({ length: 100 }, (_, i) => ['GET', `gated${i}`]))
  await waitFor(() => routing === 8, 2000, () => `8 gated commands routing (${routing})`)
  t.equal(routing, 8, 'no more than maxRespPipeline are taken from the socket')
  t.equal(await one('PING'), 'PONG', 'other connections are served meanwhile')
  open()
  gate = null
  const replies = await pending
  t.equal(replies.length, 100)
  t.ok(replies.every((reply) => reply === null))
})

t.test('values held by replies in progress are bounded by limits.maxInFlightResponseBytes', async (t) => {
  await live().call(['SET', 'gatedkb', 'v'.repeat(1000)])
  // Three 1,000-byte values ready in the same turn: the third passes the 2,048-byte budget.
  let open!: () => void
  gate = new Promise((resolve) => (open = resolve))
  const pending = live().call(['GET', 'gatedkb'], ['GET', 'gatedkb'], ['GET', 'gatedkb'])
  await waitFor(() => routing === 3, 2000, () => `3 reads routing (${routing})`)
  open()
  gate = null
  const replies = await pending
  t.same(replies.slice(0, 2), [Buffer.from('v'.repeat(1000)), Buffer.from('v'.repeat(1000))])
  const refused = replies.filter((reply) => reply instanceof RespErrorReply)
  t.equal(refused.length, 1, 'past the budget a read is refused')
  t.match(errorText(refused[0]), /^TRYAGAIN overloaded: /)
  await waitFor(() => budget.held === 0, 2000, () => `held ${budget.held}`)
  t.equal(budget.held, 0, 'every charge is released once written')
  t.same(await one('GET', 'gatedkb'), Buffer.from('v'.repeat(1000)), 'and reads go on')
  t.equal(errorText(await one('MGET', 'gatedkb', 'gatedkb', 'gatedkb')), 'ERR reply too large: 3000 bytes of values, the limit is 2048 (limits.maxBatchResponseBytes): ask for fewer keys')
})

t.test('malformed requests get a protocol error and the connection closes', async (t) => {
  for (const bytes of ['*1\r\n$abc\r\n', `*2\r\n$3\r\nGET\r\n$${2 ** 40}\r\n`, '*-5x\r\n']) {
    const bad = new Client()
    bad.socket.write(bytes)
    await waitFor(() => bad.closed, 3000, () => `closed after ${JSON.stringify(bytes)}`)
    t.match(errorText(bad.replies[0]), /^ERR Protocol error: /, JSON.stringify(bytes))
  }
  const quitting = new Client()
  t.same(await quitting.call(['SET', 'q', '1'], ['QUIT'], ['GET', 'q']), ['OK', 'OK'], 'QUIT answers what came before it, then closes')
  await waitFor(() => quitting.closed, 3000)
})

t.test('past maxRespConnections a connection is refused with Redis\'s error; idle ones are closed', async (t) => {
  const clients: Client[] = []
  t.teardown(() => clients.forEach((c) => c.close()))
  // Opened one at a time until one is refused: the cap is 4, with the test's own client maybe among them.
  let refused: Client | null = null
  while (refused === null && clients.length < 5) {
    const next = new Client()
    clients.push(next)
    const [reply] = await next.call(['PING'])
    if (next.closed) refused = next
    else t.equal(reply, 'PONG')
  }
  t.equal(errorText(refused!.replies[0]), 'ERR max number of clients reached')
  clients.forEach((c) => c.close())
  await waitFor(() => front.clients === 0 || (front.clients === 1 && !client.closed), 2000)
  const idle = new Client()
  await idle.call(['PING'])
  await waitFor(() => idle.closed, 3000, () => 'the idle connection closed')
  t.ok(idle.closed, 'closed after idleTimeoutMs with nothing to do')
})

// Last: the front closes, and the process can exit.
t.test('closing answers the commands in flight, then ends every connection', async (t) => {
  let open!: () => void
  gate = new Promise((resolve) => (open = resolve))
  const pending = live().call(['GET', 'gatedkb'])
  await waitFor(() => routing === 1, 2000)
  const closing = front.close(5000)
  open()
  gate = null
  t.same(await pending, [Buffer.from('v'.repeat(1000))])
  await closing
  await waitFor(() => client.closed, 2000)
  t.ok(client.closed)
})
