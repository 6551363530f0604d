// Every numeric argument of the RESP commands at its edges (0, -1, 2^31, 2^48, 2^53, 2^63, 2^64,
// 1e300, huge digit strings) against a real shard: each answers what a model of the documented
// ranges predicts, exact past 2^53, and the process stays up. Also through redis-cli.
import t from 'tap'
import { Redis } from 'ioredis'
import { LOGICAL_RANGE } from '../../common/hlc.ts'
import { INT64_MAX, INT64_MIN, MAX_TTL_MS } from '../../common/limits.ts'
import { run, startShardProcess } from '../helpers/processes.ts'

const shard = await startShardProcess(t, ['--name', 'numbers'])
// Integer replies as strings, so that values past 2^53 are compared exactly.
const redis = new Redis({ port: shard.port, host: '127.0.0.1', stringNumbers: true, maxRetriesPerRequest: 0 })
t.teardown(() => redis.disconnect())

const EDGES = [
  '0', '-1', '1', '2147483648', '281474976710656', '9007199254740991', '9007199254740992',
  '9223372036854775807', '9223372036854775808', '-9223372036854775808', '-9223372036854775809',
  '18446744073709551616', '1e300', '1.5', '0x10', '', '-', 'NaN', '9'.repeat(400), '-'.concat('9'.repeat(100_000)),
]
const DRIFT_MS = 60_000

const NOT_INTEGER = 'ERR value is not an integer or out of range'
const invalidExpire = (command: string) => `ERR invalid expire time in '${command}' command`

/** The argument as Redis reads a signed 64-bit integer, or null. */
function int64(text: string): bigint | null {
  if (!/^-?\d{1,19}$/.test(text)) return null
  const value = BigInt(text)
  return value >= INT64_MIN && value <= INT64_MAX ? value : null
}

/** What the shard must answer: a reply (string) or an error message. */
type Expected = { reply: string | null } | { error: string }

async function actual(...args: string[]): Promise<Expected> {
  try {
    const reply = await redis.call(args[0], ...args.slice(1))
    return { reply: reply === null ? null : String(reply) }
  } catch (error) {
    return { error: (error as Error).message }
  }
}

function ttlModel(text: string, unitMs: bigint, command: string, zeroDeletes: boolean): Expected & { ms?: bigint } {
  const value = int64(text)
  if (value === null) return { error: NOT_INTEGER }
  const ms = value * unitMs
  if (ms > BigInt(MAX_TTL_MS)) return { error: invalidExpire(command) }
  if (ms <= 0n) return zeroDeletes ? { reply: '1', ms } : { error: invalidExpire(command) }
  return { reply: zeroDeletes ? '1' : 'OK', ms }
}

function versionModel(text: string): Expected | 'accepted' {
  const value = int64(text)
  if (value === null) return { error: NOT_INTEGER }
  if (value <= 0n) return { error: 'ERR version must be a positive integer' }
  // A margin of a second either side of the drift: the shard's clock is not this test's.
  if (value > BigInt((Date.now() + DRIFT_MS + 1000) * LOGICAL_RANGE)) return { error: "ERR version is too far ahead of this shard's clock" }
  return 'accepted'
}

t.test('SET EX / PX, EXPIRE, PEXPIRE: TTLs up to MAX_TTL_MS, Redis\'s errors past it', async (t) => {
  for (const text of EDGES) {
    for (const [option, unit] of [['EX', 1000n], ['PX', 1n]] as const) {
      const expected = ttlModel(text, unit, 'set', false)
      t.same(await actual('SET', 'k', 'v', option, text), 'error' in expected ? { error: expected.error } : { reply: 'OK' }, `SET k v ${option} ${text.slice(0, 24)}`)
      if ('reply' in expected) t.ok(Math.abs(Number(await redis.pttl('k')) - Number(expected.ms)) < 5000, `its TTL is ${expected.ms} ms`)
    }
    for (const [command, unit] of [['expire', 1000n], ['pexpire', 1n]] as const) {
      await redis.set('e', 'v')
      const expected = ttlModel(text, unit, command, true)
      t.same(await actual(command, 'e', text), 'error' in expected ? { error: expected.error } : { reply: '1' }, `${command.toUpperCase()} e ${text.slice(0, 24)}`)
      if ('reply' in expected) {
        if (expected.ms! <= 0n) t.equal(await redis.exists('e'), '0', 'a TTL of 0 or less deletes, as in Redis')
        else t.ok(Math.abs(Number(await redis.pttl('e')) - Number(expected.ms)) < 5000, `its TTL is ${expected.ms} ms`)
      } else {
        t.equal(await redis.pttl('e'), '-1', 'a refused EXPIRE leaves the key as it was')
      }
    }
  }
  t.same(await actual('SET', 'k', 'v', 'PX', '999999999999999'), { error: invalidExpire('set') }, 'the PX that used to crash the shard')
  t.same(await actual('SET', 'k', 'v', 'PX', String(MAX_TTL_MS)), { reply: 'OK' }, 'exactly MAX_TTL_MS is accepted')
  t.same(await actual('SET', 'k', 'v', 'PX', String(MAX_TTL_MS + 1)), { error: invalidExpire('set') })
})

t.test('INCRBY / DECRBY: signed 64-bit, exact past 2^53, overflow an error', async (t) => {
  for (const text of EDGES) {
    const delta = int64(text)
    await redis.set('c', '0')
    t.same(await actual('INCRBY', 'c', text), delta === null ? { error: NOT_INTEGER } : { reply: String(delta) }, `INCRBY c ${text.slice(0, 24)}`)
    await redis.set('c', '0')
    const decremented = delta === null ? { error: NOT_INTEGER } : delta === INT64_MIN ? { error: 'ERR increment or decrement would overflow' } : { reply: String(-delta) }
    t.same(await actual('DECRBY', 'c', text), decremented, `DECRBY c ${text.slice(0, 24)}`)
  }
  await redis.set('c', '9007199254740991')
  t.same([await redis.incr('c'), await redis.incr('c'), await redis.incrby('c', 1000)], ['9007199254740992', '9007199254740993', '9007199254741993'], 'exact past 2^53')
  await redis.set('c', String(INT64_MAX - 1n))
  t.equal(await redis.incr('c'), String(INT64_MAX))
  await t.rejects(redis.incr('c'), /ERR increment or decrement would overflow/)
  t.equal(await redis.get('c'), String(INT64_MAX), 'a refused increment changes nothing')
  await redis.set('c', String(INT64_MIN))
  await t.rejects(redis.decr('c'), /overflow/)
  await t.rejects(redis.incrby('c', '-1'), /overflow/)
  await redis.set('c', '99999999999999999999')
  await t.rejects(redis.incr('c'), /not an integer or out of range/, 'a value past int64 is not a counter')
})

t.test('SL.SETV / SL.DELV versions: positive, at most maxVersionDriftMs ahead of the clock', async (t) => {
  for (const [i, text] of EDGES.entries()) {
    const expected = versionModel(text)
    const set = await actual('SL.SETV', `v${i}`, 'value', text)
    const deleted = await actual('SL.DELV', `d${i}`, text)
    if (expected === 'accepted') {
      t.same(set, { reply: '1' }, `SL.SETV version ${text}`)
      t.same(deleted, { reply: '0' }, `SL.DELV version ${text} (nothing to delete)`)
    } else {
      t.same(set, expected, `SL.SETV version ${text.slice(0, 24)}`)
      t.same(deleted, expected, `SL.DELV version ${text.slice(0, 24)}`)
    }
  }
  const now = () => String(Date.now() * LOGICAL_RANGE)
  t.same(await actual('SL.SETV', 'poison', 'v', '9007199254740991'), { error: "ERR version is too far ahead of this shard's clock" }, 'the version that used to pin a key forever')
  t.equal(await redis.call('SL.SETV', 'poison', 'v1', now()), '1', 'a current version is taken')
  t.equal(await redis.set('poison', 'local'), 'OK')
  const [, localVersion] = (await redis.call('SL.GETV', 'poison')) as [string, string]
  t.ok(BigInt(localVersion) < BigInt(Date.now() + DRIFT_MS) * BigInt(LOGICAL_RANGE), 'the shard\'s clock was not pushed ahead')
  t.equal(await redis.call('SL.SETV', 'poison', 'v2', String(BigInt(localVersion) + 1n)), '1', 'and the key is not pinned')
  t.match(shard.output(), /store refused a command: ERR version is too far ahead of this shard's clock/, 'the refusal is logged')
  t.ok(shard.output().split('\n').filter((line) => line.includes('too far ahead')).length <= 2, 'once per burst, not per command')
})

t.test('SL.SETV PX and FLAGS', async (t) => {
  const version = () => String(Date.now() * LOGICAL_RANGE)
  for (const text of EDGES) {
    const ttl = ttlModel(text, 1n, 'sl.setv', false)
    t.same(await actual('SL.SETV', 'px', 'v', version(), 'PX', text), 'error' in ttl ? { error: ttl.error } : { reply: '1' }, `SL.SETV PX ${text.slice(0, 24)}`)
    const flags = int64(text)
    const flagsOk = flags !== null && flags >= 0n && flags <= 0xffffffffn
    t.same(await actual('SL.SETV', 'fl', 'v', version(), 'FLAGS', text), flagsOk ? { reply: '1' } : { error: NOT_INTEGER }, `SL.SETV FLAGS ${text.slice(0, 24)}`)
    if (flagsOk) t.equal(((await redis.call('SL.GETV', 'fl')) as string[])[2], String(flags), 'the flags are kept exactly')
  }
  t.same(await actual('SL.SETV', 'fl', 'v', version(), 'FLAGS', '4294967295'), { reply: '1' })
  t.same(await actual('SL.SETV', 'fl', 'v', version(), 'FLAGS', '4294967296'), { error: NOT_INTEGER })
})

t.test('redis-cli sees the same answers, and the shard is still up', async (t) => {
  const cli = async (...args: string[]) => (await run('redis-cli', ['-p', String(shard.port), ...args])).stdout.trim()
  t.equal(await cli('set', 'k', 'v', 'PX', '999999999999999'), "ERR invalid expire time in 'set' command")
  t.equal(await cli('expire', 'k', '99999999999999999999'), 'ERR value is not an integer or out of range')
  t.equal(await cli('set', 'n', '9223372036854775806'), 'OK')
  t.equal(await cli('incr', 'n'), '9223372036854775807')
  t.equal(await cli('incr', 'n'), 'ERR increment or decrement would overflow')
  t.equal(await cli('decrby', 'n', '-9223372036854775808'), 'ERR increment or decrement would overflow')
  t.equal(await cli('sl.setv', 'k', 'v', '9007199254740991'), "ERR version is too far ahead of this shard's clock")
  t.equal(await cli('ping'), 'PONG')
  t.equal(shard.child.exitCode, null, 'the process never exited')
})
