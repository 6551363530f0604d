// A real shard process driven by the clients users have: redis-cli, ioredis, raw sockets for
// malformed input and slow readers, and HTTP for the admin API; plus flags and SIGTERM.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { run, startShardProcess, waitFor } from '../helpers/processes.ts'

const CLI = new URL('../../cli/shardline.ts', import.meta.url).pathname

function configFile(yaml: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'shardline-')), 'shard.yaml')
  writeFileSync(file, yaml)
  return file
}

const shard = await startShardProcess(t, ['--name', 'e2e', '--config', configFile('limits:\n  maxKeyBytes: 32\n  maxValueBytes: 4096\n  maxOutputBufferBytes: 65536\n  maxQueryBufferBytes: 70000\n  slowClientTimeoutMs: 1000\n')])
const redis = new Redis({ port: shard.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 })
await redis.connect()
t.teardown(() => redis.disconnect())

t.test('redis-cli: SET EX, GET, TTL, DEL answer as Redis does', async (t) => {
  const cli = async (...args: string[]) => (await run('redis-cli', ['-p', String(shard.port), ...args])).stdout.trim()
  t.equal(await cli('set', 'k', 'v', 'EX', '10'), 'OK')
  t.equal(await cli('get', 'k'), 'v')
  t.equal(await cli('ttl', 'k'), '10')
  t.equal(await cli('del', 'k'), '1')
  t.equal(await cli('get', 'k'), '')
  t.equal(await cli('ping'), 'PONG')
})

t.test('ioredis: strings, multi-key commands, counters and expiry', async (t) => {
  t.equal(await redis.set('a', '1'), 'OK')
  t.equal(await redis.set('a', '2', 'NX'), null)
  t.equal(await redis.set('b', '2', 'XX'), null)
  t.equal(await redis.mset('b', 'x', 'c', 'y'), 'OK')
  t.same(await redis.mget('a', 'b', 'nope', 'c'), ['1', 'x', null, 'y'])
  t.equal(await redis.exists('a', 'b', 'nope'), 2)
  t.equal(await redis.incr('n'), 1)
  t.equal(await redis.incrby('n', 10), 11)
  t.equal(await redis.decr('n'), 10)
  t.equal(await redis.decrby('n', 20), -10)
  await t.rejects(redis.incr('b'), /value is not an integer or out of range/)
  t.equal(await redis.expire('a', 100), 1)
  t.equal(await redis.ttl('a'), 100)
  t.ok((await redis.pttl('a')) > 99_000)
  t.equal(await redis.pexpire('a', 50_000), 1)
  t.equal(await redis.ttl('a'), 50)
  t.equal(await redis.ttl('nope'), -2)
  t.equal(await redis.ttl('b'), -1)
  t.equal(await redis.set('p', 'v', 'PX', 20), 'OK')
  await waitFor(async () => (await redis.get('p')) === null, 2000, () => 'p never expired')
  t.equal(await redis.del('a', 'b', 'nope'), 2)
  t.equal(await redis.echo('hello'), 'hello')
  t.equal(await redis.ping(), 'PONG')
  const binary = Buffer.from([0, 255, 13, 10, 36])
  await redis.set('bin', binary)
  t.same(await redis.getBuffer('bin'), binary, 'binary-safe')
})

t.test('pipelined commands come back in order', async (t) => {
  const pipeline = redis.pipeline()
  for (let i = 0; i < 500; i++) pipeline.set(`pipe:${i}`, String(i)).get(`pipe:${i}`)
  const results = (await pipeline.exec())!
  t.equal(results.length, 1000)
  t.ok(results.every(([error, reply], i) => error === null && reply === (i % 2 === 0 ? 'OK' : String((i - 1) / 2))))
})

t.test('errors keep the connection; INFO and DBSIZE report what happened', async (t) => {
  await t.rejects(redis.call('nosuchcommand', 'x'), { message: "ERR unknown command 'nosuchcommand', with args beginning with: 'x' " }, 'in Redis 7\'s words')
  await t.rejects(redis.call('get'), /ERR wrong number of arguments for 'get' command/)
  await t.rejects(redis.call('set', 'k', 'v', 'EX', '-1'), /invalid expire time/)
  await t.rejects(redis.call('set', 'k', 'v', 'BOGUS'), /syntax error/)
  await t.rejects(redis.set('k'.repeat(33), 'v'), /key too long \(33 bytes, limit 32\)/)
  await t.rejects(redis.set('k', 'v'.repeat(4097)), /value too large \(4097 bytes, limit 4096\)/)
  t.equal(await redis.ping(), 'PONG', 'still connected')
  const info = await redis.info()
  for (const field of ['redis_version', 'connected_clients', 'maxclients', 'used_memory', 'used_memory_clients', 'used_memory_rss', 'used_memory_vm', 'used_memory_repl_backlog', 'maxmemory', 'total_commands_processed', 'rejected_connections', 'keyspace_hits', 'keyspace_misses', 'evicted_keys', 'expired_keys']) {
    t.match(info, new RegExp(`^${field}:`, 'm'), field)
  }
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)![1])
  t.ok(field('used_memory') > 0 && field('used_memory') <= field('maxmemory'), 'used_memory is what maxmemory bounds: the charged bytes')
  t.ok(field('used_memory_rss') > field('maxmemory') / 4, 'the process\'s RSS is reported beside it')
  t.match(info, /^db0:keys=\d+,expires=\d+/m)
  t.match(await redis.info('stats'), /^# Stats/m)
  t.notMatch(await redis.info('stats'), /^# Memory/m)
  const size = await redis.dbsize()
  t.ok(size > 500)
  t.equal(await redis.flushall(), 'OK')
  t.equal(await redis.dbsize(), 0)
})

t.test('SL.SETV / SL.GETV: versioned writes with flags, last writer wins', async (t) => {
  t.equal(await redis.call('sl.setv', 'v', 'new', '5000', 'FLAGS', '3', 'PX', '60000'), 1)
  t.equal(await redis.call('sl.setv', 'v', 'old', '4000'), 0, 'an older version is ignored')
  const [value, version, flags, pttl] = (await redis.call('sl.getv', 'v')) as [string, number, number, number]
  t.same([value, version, flags], ['new', 5000, 3])
  t.ok(pttl > 59_000 && pttl <= 60_000)
  t.equal(await redis.call('sl.getv', 'missing'), null)
  await t.rejects(redis.call('sl.setv', 'v', 'x', '0'), /version must be a positive integer/)
})

async function rawExchange(bytes: string): Promise<{ reply: string; closed: boolean }> {
  const socket = net.connect(shard.port, '127.0.0.1')
  await once(socket, 'connect')
  let reply = ''
  socket.on('data', (chunk) => (reply += chunk))
  socket.write(bytes)
  const closed = await Promise.race([once(socket, 'close').then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 500))])
  socket.destroy()
  return { reply, closed }
}

t.test('a malformed frame gets a protocol error and the connection is closed', async (t) => {
  const { reply, closed } = await rawExchange('*1\r\n$x\r\n')
  t.equal(reply, '-ERR Protocol error: invalid bulk length\r\n')
  t.equal(closed, true)
  t.equal(await redis.ping(), 'PONG', 'other clients are unaffected')
})

t.test('inline commands work and QUIT closes after replying', async (t) => {
  const { reply, closed } = await rawExchange('PING\r\nSET x 1\r\nGET x\r\nQUIT\r\nPING\r\n')
  t.equal(reply, '+PONG\r\n+OK\r\n$1\r\n1\r\n+OK\r\n')
  t.equal(closed, true)
})

t.test('a client that does not read its replies is paused at the output limit, then closed once stalled', async (t) => {
  await redis.set('big', 'x'.repeat(4000))
  const socket = net.connect(shard.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.pause()
  socket.on('error', () => {})
  const batch = '*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n'.repeat(1000)
  const droppedLine = /shardline_shard_connections_dropped_total\{[^}]*reason="slow_client"[^}]*\} 1/
  let mostBuffered = 0
  await waitFor(async () => {
    if (!socket.destroyed) socket.write(batch)
    const stats = (await http('/stats')).body as { clientBufferBytes: number }
    mostBuffered = Math.max(mostBuffered, stats.clientBufferBytes)
    return droppedLine.test(await (await fetch(`${shard.adminUrl}/metrics`)).text())
  }, 20_000, () => 'the slow reader was never dropped')
  socket.destroy()
  // Its pipeline stops at the 64 KiB output limit (plus the reply that crossed it), and its
  // unread requests wait in the kernel, not in the shard.
  t.ok(mostBuffered <= 65536 + 4096 + 70000, `the shard held at most ${mostBuffered} bytes for it`)
  t.match(shard.output(), /its replies went unread, or its request stayed unfinished, for limits.slowClientTimeoutMs/)
  t.equal(await redis.ping(), 'PONG')
})

async function http(path: string, init: RequestInit = {}) {
  const response = await fetch(`${shard.adminUrl}${path}`, init)
  const type = response.headers.get('content-type') ?? ''
  const body = type.includes('json') ? await response.json() : Buffer.from(await response.arrayBuffer())
  return { status: response.status, type, body }
}
const postJson = (path: string, body: string) => http(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body })

t.test('admin key API: a JSON value round-trips and reads the same through RESP', async (t) => {
  t.same((await postJson('/keys/doc', '{"value":{"a":[1,"two"]},"ttl":60}')).body, { stored: true })
  t.same((await http('/keys/doc')).body, { value: { a: [1, 'two'] } })
  t.equal(await redis.get('doc'), '{"a":[1,"two"]}')
  t.equal(await redis.ttl('doc'), 60)
  await postJson('/keys/text', '{"value":"héllo"}')
  t.same(await redis.getBuffer('text'), Buffer.from('héllo', 'utf8'), 'a JSON string is stored as its UTF-8 bytes')
  await redis.set('fromresp', 'plain')
  t.same((await http('/keys/fromresp')).body, { value: 'plain' })
  t.same((await http('/keys/doc', { method: 'DELETE' })).body, { deleted: true })
  const miss = await http('/keys/doc')
  t.equal(miss.status, 404)
  t.same(miss.body, { error: 'not found', code: 'not_found' })
})

t.test('admin key API: raw bytes in and out', async (t) => {
  const bytes = Buffer.from([0, 1, 254, 255, 10])
  const put = await http('/keys/raw?ttl=30', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes })
  t.equal(put.status, 200)
  t.same(await redis.getBuffer('raw'), bytes)
  const raw = await http('/keys/raw', { headers: { accept: 'application/octet-stream' } })
  t.same(raw.body, bytes)
  t.same((await http('/keys/raw')).body, { value: bytes.toString('base64'), encoding: 'base64' }, 'non-UTF-8 bytes come back as base64 in JSON')
  t.equal(await redis.ttl('raw'), 30)
  await postJson(`/keys/${encodeURIComponent('a/b c?#é')}`, '{"value":1}')
  t.equal(await redis.get('a/b c?#é'), '1', 'a percent-encoded key is the key its UTF-8 bytes spell')
})

t.test('admin key API: bad input gets a 4xx with {error, code} and is logged once', async (t) => {
  const cases: Array<[string, Promise<{ status: number; body: unknown }>, number, string]> = [
    ['bad JSON', postJson('/keys/bad', '{bad'), 400, 'invalid_json'],
    ['missing value', postJson('/keys/bad', '{"ttl":5}'), 400, 'invalid_request'],
    ['negative ttl', postJson('/keys/bad', '{"value":1,"ttl":-5}'), 400, 'invalid_ttl'],
    ['string ttl', postJson('/keys/bad', '{"value":1,"ttl":"10"}'), 400, 'invalid_ttl'],
    ['unknown field', postJson('/keys/bad', '{"value":1,"colour":"red"}'), 400, 'invalid_request'],
    ['oversize body', postJson('/keys/bad', JSON.stringify({ value: 'v'.repeat(20_000) })), 413, 'too_large'],
    ['oversize value', postJson('/keys/bad', JSON.stringify({ value: 'v'.repeat(5000) })), 413, 'too_large'],
    ['wrong content type', http('/keys/bad', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' }), 415, 'unsupported_media_type'],
    ['bad raw ttl', http('/keys/bad?ttl=soon', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'v' }), 400, 'invalid_ttl'],
    ['control character key', http('/keys/a%01b'), 400, 'invalid_key'],
    ['long key', http(`/keys/${'k'.repeat(33)}`), 400, 'key_too_long'],
  ]
  for (const [name, request, status, code] of cases) {
    const response = await request
    t.equal(response.status, status, name)
    t.match(response.body, { code, error: String }, name)
  }
  const logged = shard.output().split('\n').filter((line) => line.includes('"code":"invalid_json"'))
  t.equal(logged.length, 1, 'one log line for one bad request')
  t.same((await http('/keys/bad')).body, { error: 'not found', code: 'not_found' }, 'nothing was stored by bad requests')
})

t.test('admin endpoints: health, readiness, stats and metrics', async (t) => {
  t.same((await http('/healthz')).body, { status: 'ok' })
  t.same((await http('/readyz')).body, { status: 'ready' })
  const stats = (await http('/stats')).body as Record<string, unknown>
  t.match(stats, { name: 'e2e', policy: 'lru', items: Number, storedBytes: Number, maxMemory: 64 * 1024 * 1024, hits: Number, misses: Number, clientBufferBytes: Number })
  const metrics = (await http('/metrics')).body.toString()
  for (const name of [
    'shardline_shard_commands_total{command="get",outcome="ok"',
    'shardline_shard_command_duration_seconds_bucket',
    'shardline_shard_keyspace_hits_total',
    'shardline_shard_keyspace_misses_total',
    'shardline_shard_evictions_total',
    'shardline_shard_expirations_total{reason="read"',
    'shardline_shard_items',
    'shardline_shard_stored_bytes',
    'shardline_shard_memory_budget_bytes',
    'shardline_shard_connections',
    'shardline_shard_client_buffer_bytes',
    'shardline_shard_connections_dropped_total{reason="max_clients"',
    'process_resident_memory_bytes',
    'nodejs_heap_size_used_bytes',
  ]) {
    t.ok(metrics.includes(name), name)
  }
})

t.test('bad flags exit with status 2 and say what is wrong', async (t) => {
  const badMemory = await run(process.execPath, [CLI, 'shard', '--max-memory', 'lots'])
  t.equal(badMemory.code, 2)
  t.match(badMemory.stderr, /maxMemory: invalid byte size "lots"/)
  const badPolicy = await run(process.execPath, [CLI, 'shard', '--policy', 'random'])
  t.equal(badPolicy.code, 2)
  t.match(badPolicy.stderr, /policy: must be equal to one of the allowed values/)
  const badFile = await run(process.execPath, [CLI, 'shard', '--config', configFile('port: 1\nlimits:\n  maxKeyBytes: 0\n')])
  t.equal(badFile.code, 2)
  t.match(badFile.stderr, /shard\.yaml:3: limits\.maxKeyBytes: must be >= 1/)
})

t.test('SIGTERM: stops accepting, closes idle clients, exits 0 within 5 s', async (t) => {
  const started = Date.now()
  const idle = new Redis({ port: shard.port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null })
  idle.on('error', () => {})
  await idle.connect()
  const { code } = await shard.stop('SIGTERM')
  t.equal(code, 0)
  t.ok(Date.now() - started < 5000, `exited in ${Date.now() - started} ms`)
  idle.disconnect()
})
