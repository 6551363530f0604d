// SL.SCAN, SL.PUTV and SL.DROP against real shard processes (the moves a rebalance makes): a scan
// returns every key once while writes go on, in bounded pages; entries travel marked with their
// time left; versioned puts and drops keep what is newer; replicas end equal.
import t from 'tap'
import { Redis } from 'ioredis'
import { LOGICAL_RANGE } from '../../common/hlc.ts'
import { entryExpiresAt, entryFlags, entryIsCounter, entryIsTombstone, entryValue, packEntry } from '../../shard/entry.ts'
import { KeyScans, MAX_SCAN_COUNT, SCAN_PAGE_BYTES } from '../../shard/key-scan.ts'
import { Store } from '../../shard/store.ts'
import { startShardProcess, waitFor, type ShardProcess, type Teardown } from '../helpers/processes.ts'
import { configFile, converged, digest, startPair } from '../helpers/shard-pair.ts'

interface Page {
  cursor: string
  /** [key, packed entry (latin1)] in reply order. */
  items: Array<[string, string]>
  /** The reply's key and entry bytes. */
  bytes: number
}

function client(t: Teardown, shard: ShardProcess): Redis {
  const redis = new Redis({ port: shard.port, host: '127.0.0.1', maxRetriesPerRequest: 0 })
  t.teardown(() => redis.disconnect())
  return redis
}

async function scanPage(redis: Redis, cursor: string, count?: number): Promise<Page> {
  const [next, flat] = (await redis.callBuffer('SL.SCAN', cursor, ...(count === undefined ? [] : ['COUNT', count]))) as [Buffer, Buffer[]]
  const items: Array<[string, string]> = []
  let bytes = 0
  for (let i = 0; i < flat.length; i += 2) {
    items.push([flat[i].toString('latin1'), flat[i + 1].toString('latin1')])
    bytes += flat[i].length + flat[i + 1].length
  }
  return { cursor: next.toString(), items, bytes }
}

/** Every page of a scan from "0"; between(n) runs before page n (from 1) is asked for. */
async function scanAll(redis: Redis, count?: number, between?: (next: number) => Promise<void>): Promise<Page[]> {
  const pages = [await scanPage(redis, '0', count)]
  while (pages.at(-1)!.cursor !== '0') {
    await between?.(pages.length)
    pages.push(await scanPage(redis, pages.at(-1)!.cursor, count))
  }
  return pages
}

// Two plain shards serve every test that needs no settings of its own; each such test empties them first.
const [plainA, plainB] = await Promise.all([startShardProcess(t), startShardProcess(t)])
const [shardA, shardB] = [client(t, plainA), client(t, plainB)]
async function emptied(...clients: Redis[]): Promise<Redis[]> {
  await Promise.all(clients.map((redis) => redis.flushall()))
  return clients
}

const entriesOf = (pages: Page[]) => new Map(pages.flatMap((page) => page.items))
/** A version the shard takes: its clock's form (ms × LOGICAL_RANGE), aheadMs from now. */
const versionAt = (aheadMs = 0) => (Date.now() + aheadMs) * LOGICAL_RANGE
const putv = (redis: Redis, key: string, entry: string) => redis.call('SL.PUTV', key, Buffer.from(entry, 'latin1'))

t.test('a full scan returns every key present at its start exactly once while writes, deletes and drops go on', async (t) => {
  const [redis] = await emptied(shardA)
  const initial = Array.from({ length: 3000 }, (_, i) => `key:${i}`)
  await redis.mset(...initial.flatMap((key) => [key, `v:${key}`]))
  // What happened to a key before the page numbered n was asked for.
  const deletedBefore = new Map<string, number>()
  const droppedBefore = new Map<string, number>()
  const rewrittenBefore = new Map<string, number>()
  const created = new Set<string>()
  const pick = (n: number) => Array.from({ length: n }, () => initial[Math.floor(Math.random() * initial.length)])
  const pages = await scanAll(redis, 100, async (page) => {
    const pipeline = redis.pipeline()
    for (const key of pick(10)) {
      if (droppedBefore.has(key) || deletedBefore.has(key)) continue
      pipeline.del(key)
      deletedBefore.set(key, page)
    }
    for (const key of pick(10)) {
      if (droppedBefore.has(key)) continue
      pipeline.call('SL.DROP', key, versionAt(1000))
      droppedBefore.set(key, page)
    }
    for (const key of pick(10)) {
      if (droppedBefore.has(key) || deletedBefore.has(key)) continue
      pipeline.set(key, `new:${key}`)
      if (!rewrittenBefore.has(key)) rewrittenBefore.set(key, page)
    }
    for (let i = 0; i < 10; i++) {
      const key = `new:${page}:${i}`
      created.add(key)
      pipeline.set(key, 'x')
    }
    // Reads move keys to the front of the recency order a live iterator would follow.
    for (const key of pick(50)) pipeline.get(key)
    await pipeline.exec()
  })
  // Each key's fate against what the scan promised, collected so that a failure lists them all.
  const wrong: string[] = []
  const seen = new Map<string, { page: number; entry: string }>()
  pages.forEach((page, number) => {
    for (const [key, entry] of page.items) {
      if (seen.has(key)) wrong.push(`${key} returned twice`)
      seen.set(key, { page: number, entry })
    }
  })
  for (const key of created) if (seen.has(key)) wrong.push(`${key}, written after the start, returned`)
  let checked = 0
  for (const key of initial) {
    const got = seen.get(key)
    const dropped = droppedBefore.get(key)
    const deleted = deletedBefore.get(key)
    const rewritten = rewrittenBefore.get(key)
    if (dropped !== undefined && (got === undefined || got.page >= dropped)) {
      if (got !== undefined) wrong.push(`${key}, dropped before page ${dropped}, returned in page ${got.page}`)
    } else if (got === undefined) {
      wrong.push(`${key} never returned`)
    } else if (deleted !== undefined && got.page >= deleted) {
      if (!entryIsTombstone(got.entry)) wrong.push(`${key}, deleted before page ${deleted}, returned live in page ${got.page}`)
      checked++
    } else {
      const expected = rewritten !== undefined && got.page >= rewritten ? `new:${key}` : `v:${key}`
      if (entryValue(got.entry) !== expected) wrong.push(`${key} returned ${entryValue(got.entry)}, not ${expected}`)
      checked++
    }
  }
  t.same(wrong, [], 'every key present at the start and still there when its page was read came once, as it was then; no other key came')
  t.ok(checked > 2000, `${checked} keys checked`)
  t.ok(deletedBefore.size > 100 && droppedBefore.size > 100 && rewrittenBefore.size > 100, 'deletes, drops and rewrites happened throughout')
  t.ok(pages.length >= 25 && pages.every((page) => page.items.length <= 100), `${pages.length} pages of at most 100 keys`)
})

t.test('entries come back packed: tombstones and counters marked, flags kept, TTL as the time left', async (t) => {
  const [redis] = await emptied(shardA)
  await redis.set('plain', 'v')
  await redis.set('ttl', 'v', 'PX', 60_000)
  await redis.call('SL.SETV', 'flagged', 'f', versionAt(), 'FLAGS', 7)
  await redis.incrby('counter', 5)
  await redis.incrby('counter', 2)
  await redis.set('deleted', 'v')
  await redis.del('deleted')
  const entries = entriesOf(await scanAll(redis))
  t.same([...entries.keys()].sort(), ['counter', 'deleted', 'flagged', 'plain', 'ttl'])
  t.equal(entryValue(entries.get('plain')!), 'v')
  t.equal(entryExpiresAt(entries.get('plain')!), 0, 'no expiry stays none')
  const left = entryExpiresAt(entries.get('ttl')!)
  t.ok(left > 50_000 && left <= 60_000, `the expiry field holds the time left (${left} ms), not a date`)
  t.equal(entryFlags(entries.get('flagged')!), 7)
  t.ok(entryIsCounter(entries.get('counter')!), 'a counter is marked')
  t.equal(entryValue(entries.get('counter')!), '7')
  t.ok(entryIsTombstone(entries.get('deleted')!), 'a tombstone is marked')
  const tombstoneLeft = entryExpiresAt(entries.get('deleted')!)
  t.ok(tombstoneLeft > 0 && tombstoneLeft <= 60_000, 'a tombstone carries its time left too')
})

t.test('COUNT bounds a page, and so does the byte budget, with at least one key per page', async (t) => {
  // A 1 MiB output buffer makes the page budget 1 MiB; values up to 2 MiB pass it alone.
  const config = configFile('limits:\n  maxOutputBufferBytes: 1048576\n  maxValueBytes: 2097152\n  maxQueryBufferBytes: 4194304\n')
  const shard = await startShardProcess(t, ['--config', config])
  const redis = client(t, shard)
  for (let i = 0; i < 20; i++) await redis.set(`small:${i}`, 'x')
  for (const count of [1, 7, MAX_SCAN_COUNT]) {
    const pages = await scanAll(redis, count)
    t.ok(pages.every((page) => page.items.length <= count), `COUNT ${count}: no page holds more`)
    t.equal(entriesOf(pages).size, 20, `COUNT ${count}: every key once`)
  }
  t.equal((await scanAll(redis)).length, 1, 'COUNT defaults to 100')
  await redis.flushall()

  const budget = 1024 * 1024
  for (let i = 0; i < 8; i++) await redis.set(`big:${i}`, Buffer.alloc(300 * 1024, i))
  await redis.set('huge', Buffer.alloc(2 * budget, 'h'))
  const pages = await scanAll(redis, 100)
  t.equal(entriesOf(pages).size, 9, 'every key once')
  t.ok(pages.length >= 3, `${pages.length} pages`)
  for (const page of pages) {
    const [[firstKey, firstEntry]] = page.items
    const [lastKey, lastEntry] = page.items.at(-1)!
    t.ok(page.bytes - lastKey.length - lastEntry.length < budget, 'a page stops once past the budget: without its last entry it is under')
    if (firstKey.length + firstEntry.length >= budget) t.equal(page.items.length, 1, 'an entry past the budget is a page of its own')
  }
  t.ok(SCAN_PAGE_BYTES > budget, 'the shard-wide page budget is the larger one here')
})

t.test('cursors: unknown ones are refused, a retried page reads the same keys, past 16 open scans the least recently used goes', async (t) => {
  const [redis] = await emptied(shardA)
  await redis.mset(...Array.from({ length: 10 }, (_, i) => [`k${i}`, 'v']).flat())
  const invalid = { message: 'ERR invalid cursor' }
  for (const cursor of ['1', '4294967296', '18446744073709551615', '18446744073709551616', '-1', 'abc', '', ' 0', 'x'.repeat(100)]) {
    await t.rejects(scanPage(redis, cursor), invalid, `cursor ${JSON.stringify(cursor.slice(0, 24))}`)
  }

  t.equal((await scanPage(redis, '00', 100)).items.length, 10, '"00" starts a scan too, as Redis reads it')
  const first = await scanPage(redis, '0', 2)
  const second = await scanPage(redis, first.cursor, 2)
  t.same((await scanPage(redis, first.cursor, 2)).items, second.items, 'asking for a page again (a retry) reads it again')
  const third = await scanPage(redis, second.cursor, 2)
  await t.rejects(scanPage(redis, first.cursor, 2), invalid, 'a page before the last one served is gone')
  t.notSame(third.items, second.items)

  const scans = [first.cursor]
  for (let i = 0; i < 15; i++) scans.push((await scanPage(redis, '0', 1)).cursor)
  // 16 open: using the oldest makes the second oldest the least recently used.
  scans[0] = (await scanPage(redis, third.cursor, 2)).cursor
  await scanPage(redis, '0', 1)
  await t.rejects(scanPage(redis, scans[1], 1), invalid, 'the 17th scan dropped the least recently used')
  t.equal((await scanPage(redis, scans[0], 2)).items.length, 2, 'the one used since is still open')
  for (const cursor of scans.slice(2)) t.equal((await scanPage(redis, cursor, 1)).items.length, 1)

  const done = await scanAll(redis, 100)
  t.equal(done.length, 1)
  t.equal(done[0].cursor, '0', 'a finished scan answers cursor 0')
})

t.test('an idle scan is dropped after idleMs', async (t) => {
  const store = new Store({ maxMemory: 1 << 20 })
  for (let i = 0; i < 5; i++) store.set(`k${i}`, 'v')
  const scans = new KeyScans(store, { maxSessions: 16, idleMs: 50 })
  const { cursor } = scans.page('0', 1, SCAN_PAGE_BYTES)
  t.equal(scans.page(cursor, 1, SCAN_PAGE_BYTES).keysAndEntries.length, 2, 'open while used')
  // Polled without asking for a page: that would keep it in use.
  await waitFor(() => scans.open === 0, 5000, () => 'the idle scan to be dropped')
  t.throws(() => scans.page(cursor, 1, SCAN_PAGE_BYTES), { message: 'ERR invalid cursor' })
})

t.test('SL.SCAN refuses bad arguments with Redis\'s replies', async (t) => {
  const [redis] = await emptied(shardA)
  await redis.set('k', 'v')
  const cases: Array<[unknown[], string]> = [
    [[], "ERR wrong number of arguments for 'sl.scan' command"],
    [['0', 'COUNT'], 'ERR syntax error'],
    [['0', 'LIMIT', '5'], 'ERR syntax error'],
    [['0', 'COUNT', '5', 'COUNT', '5'], 'ERR syntax error'],
    [['0', 'COUNT', '0'], 'ERR syntax error'],
    [['0', 'COUNT', '-1'], 'ERR syntax error'],
    [['0', 'COUNT', String(MAX_SCAN_COUNT + 1)], 'ERR value is not an integer or out of range'],
    [['0', 'COUNT', String(2 ** 31)], 'ERR value is not an integer or out of range'],
    [['0', 'COUNT', '9223372036854775808'], 'ERR value is not an integer or out of range'],
    [['0', 'COUNT', '1e300'], 'ERR value is not an integer or out of range'],
    [['0', 'COUNT', '1.5'], 'ERR value is not an integer or out of range'],
  ]
  for (const [args, message] of cases) await t.rejects(redis.call('SL.SCAN', ...(args as string[])), { message }, JSON.stringify(args))
  t.same((await scanPage(redis, '0', 1)).items, (await scanPage(redis, '0')).items)
  t.match(await redis.call('SL.SCAN', '0', 'count', '1'), ['0', ['k', String]], 'COUNT in any letter case')
  t.equal(await redis.get('k'), 'v', 'the shard still serves')
})

t.test('SL.PUTV stores an entry unless what is stored is as new or newer', async (t) => {
  const [redis] = await emptied(shardA)
  const v = versionAt()
  const entry = (value: string, version: number, meta: { expiresAt?: number; flags?: number; tombstone?: boolean } = {}) =>
    packEntry(value, { version, expiresAt: meta.expiresAt ?? 0, flags: meta.flags ?? 0, tombstone: meta.tombstone })

  t.equal(await putv(redis, 'k', entry('first', v, { flags: 3, expiresAt: 60_000 })), 1, 'into an empty key: stored')
  t.match(await redis.call('SL.GETV', 'k'), ['first', v, 3, Number], 'value, version and flags as sent')
  const pttl = await redis.pttl('k')
  t.ok(pttl > 55_000 && pttl <= 60_000, `the expiry field is read as time left (${pttl} ms)`)
  t.equal(await putv(redis, 'k', entry('same', v)), 0, 'as new: kept')
  t.equal(await putv(redis, 'k', entry('older', v - 1)), 0, 'older: kept')
  t.equal(await redis.get('k'), 'first')
  t.equal(await putv(redis, 'k', entry('newer', v + 1)), 1, 'newer: stored')
  t.equal(await redis.get('k'), 'newer')
  t.equal(await redis.pttl('k'), -1, 'with its own (no) expiry')

  t.equal(await putv(redis, 'k', entry('', v + 2, { tombstone: true, expiresAt: 60_000 })), 1, 'a tombstone is an entry too')
  t.equal(await redis.get('k'), null)
  t.equal(await redis.call('SL.SETV', 'k', 'late', v + 1), 0, 'and it refuses an older write, as a delete does')

  await redis.set('written', 'here')
  const [, version] = (await redis.call('SL.GETV', 'written')) as [string, number]
  t.equal(await putv(redis, 'written', entry('moved', version - 1)), 0, 'a write that landed first wins over an older move')
  t.equal(await redis.get('written'), 'here')
})

t.test('SL.PUTV of a counter into an empty key keeps it a counter: INCR continues from its sum', async (t) => {
  const [from, to] = await emptied(shardA, shardB)
  await from.incrby('hits', 40)
  await from.incrby('hits', 2)
  const [[key, entry]] = (await scanPage(from, '0')).items
  t.equal(await putv(to, key, entry), 1)
  t.equal(await to.get('hits'), '42')
  t.equal(await to.incr('hits'), 43, 'INCR adds to the moved sum')
  t.equal(await putv(to, key, entry), 0, 'the same copy again changes nothing (its components are already in)')
  t.equal(await to.get('hits'), '43')
  t.equal(await to.incrby('hits', -3), 40)
})

t.test('a malformed SL.PUTV is an error and changes nothing', async (t) => {
  const [redis] = await emptied(shardA)
  await redis.set('k', 'kept')
  const v = versionAt()
  const good = packEntry('new', { version: v, expiresAt: 0, flags: 0 })
  const withMark = (mark: number) => good.slice(0, 7) + String.fromCharCode(mark) + good.slice(8)
  const malformed = 'ERR malformed entry: not a packed entry as SL.SCAN returns it'
  const cases: Array<[string, string, string | RegExp]> = [
    ['shorter than the header', good.slice(0, 17), malformed],
    ['an unknown mark', withMark(4), malformed],
    ['a tombstone and a counter at once', withMark(3), malformed],
    ['a tombstone with a value', packEntry('x', { version: v, expiresAt: 0, flags: 0, tombstone: true }), malformed],
    ['a counter whose components do not parse', packEntry('12\ngarbage', { version: v, expiresAt: 0, flags: 0, counter: true }), 'ERR malformed counter entry'],
    ['version 0', packEntry('new', { version: 0, expiresAt: 0, flags: 0 }), 'ERR version must be a positive integer'],
    ['a version too far ahead', packEntry('new', { version: versionAt(3_600_000), expiresAt: 0, flags: 0 }), "ERR version is too far ahead of this shard's clock"],
    ['a value past maxValueBytes', packEntry('x'.repeat(1024 * 1024 + 1), { version: v, expiresAt: 0, flags: 0 }), 'ERR value too large (1048577 bytes, limit 1048576)'],
  ]
  for (const [what, entry, message] of cases) await t.rejects(putv(redis, 'k', entry), { message }, what)
  await t.rejects(redis.call('SL.PUTV', 'k'), { message: "ERR wrong number of arguments for 'sl.putv' command" })
  await t.rejects(putv(redis, '', good), { message: 'ERR empty key' })
  t.equal(await redis.get('k'), 'kept', 'nothing changed')
  t.equal(await putv(redis, 'k', packEntry('new', { version: (await redis.call('SL.GETV', 'k') as [string, number])[1] + 1, expiresAt: 0, flags: 0 })), 1, 'a good one still goes in')
})

t.test('SL.PUTV refused by the memory budget is -OOM, not :0 (a mover must not drop the only copy)', async (t) => {
  const redis = client(t, await startShardProcess(t, ['--policy', 'lfu', '--max-memory', '4mb']))
  const value = 'v'.repeat(10_000)
  const pipeline = redis.pipeline()
  for (let i = 0; i < 450; i++) pipeline.set(`hot:${i}`, value)
  for (let round = 0; round < 5; round++) for (let i = 0; i < 450; i++) pipeline.get(`hot:${i}`)
  await pipeline.exec()
  await t.rejects(putv(redis, 'cold', packEntry(value, { version: versionAt(), expiresAt: 0, flags: 0 })), { message: "OOM command not allowed when used memory > 'maxmemory'." })
  t.equal(await redis.exists('cold'), 0)
})

t.test('SL.DROP removes a key, leaving no tombstone, unless a newer write landed', async (t) => {
  const [redis] = await emptied(shardA)
  await redis.set('k', 'v')
  const [, version] = (await redis.call('SL.GETV', 'k')) as [string, number]
  t.equal(await redis.call('SL.DROP', 'k', version - 1), 0, 'the stored entry is newer: kept')
  t.equal(await redis.get('k'), 'v')
  t.equal(await redis.call('SL.DROP', 'k', version), 1, 'as new: dropped')
  t.equal(await redis.exists('k'), 0)
  t.equal(await redis.call('SL.SETV', 'k', 'older', version - 1), 1, 'no tombstone is left: even an older write goes in')
  t.equal(await redis.call('SL.DROP', 'missing', version), 0)
  await redis.del('gone')
  await redis.call('SL.DELV', 'gone', version)
  t.equal(await redis.call('SL.DROP', 'gone', version + 1), 1, 'a tombstone no newer is dropped too')
  t.same((await scanAll(redis)).flatMap((page) => page.items.map(([key]) => key)), ['k'])
  for (const [args, message] of [[['k', '0'], 'ERR version must be a positive integer'], [['k', 'x'], 'ERR value is not an integer or out of range'], [['k'], "ERR wrong number of arguments for 'sl.drop' command"]] as const) {
    await t.rejects(redis.call('SL.DROP', ...args), { message })
  }
})

t.test('a whole shard moved with SL.SCAN and SL.PUTV holds the same data', async (t) => {
  const [source, target] = await emptied(shardA, shardB)
  const pipeline = source.pipeline()
  for (let i = 0; i < 2000; i++) {
    if (i % 3 === 0) pipeline.set(`k${i}`, `v${i}`, 'PX', 120_000)
    else pipeline.set(`k${i}`, `v${i}`)
  }
  for (let i = 0; i < 50; i++) pipeline.incrby(`n${i}`, i)
  for (let i = 0; i < 50; i++) pipeline.call('SL.SETV', `f${i}`, 'flagged', versionAt(), 'FLAGS', i)
  await pipeline.exec()
  for (const page of await scanAll(source, 500)) {
    const puts = target.pipeline()
    for (const [key, entry] of page.items) puts.call('SL.PUTV', key, Buffer.from(entry, 'latin1'))
    t.ok((await puts.exec())!.every(([error, stored]) => error === null && stored === 1))
  }
  t.same(await digest(target), await digest(source), 'equal digests: keys, versions, flags and values')
  t.ok((await target.pttl('k0')) > 100_000, 'TTLs moved as the time left')
})

t.test('SL.PUTV and SL.DROP reach the replica, which scans too (read-only); taken on the replica, they flow back', async (t) => {
  const pair = await startPair(t)
  const [p, r] = [pair.client(pair.primary), pair.client(pair.replica)]
  const v = versionAt()
  for (let i = 0; i < 100; i++) await putv(p, `moved:${i}`, packEntry(`v${i}`, { version: v + i, expiresAt: i % 2 === 0 ? 60_000 : 0, flags: i }))
  await p.incrby('counter', 3)
  t.equal(await putv(p, 'counter-copy', entriesOf(await scanAll(p, 1000)).get('counter')!), 1)
  for (let i = 0; i < 50; i++) t.equal(await p.call('SL.DROP', `moved:${i}`, v + i), 1)
  const [items] = await converged(p, r)
  t.equal(items, 52, '50 moved keys, the counter and its copy on both')
  t.equal(await r.get('counter-copy'), '3')
  t.equal(await r.exists('moved:0'), 0, 'the drop reached the replica')

  const replicaScan = entriesOf(await scanAll(r, 7))
  t.equal(replicaScan.size, 52, 'the replica scans what it holds')
  t.same(await digest(r), await digest(p), 'scanning changed nothing')

  t.equal(await r.call('SL.DROP', 'moved:99', v + 99), 1)
  t.equal(await putv(r, 'from-replica', packEntry('x', { version: versionAt(), expiresAt: 0, flags: 0 })), 1)
  await converged(p, r)
  t.equal(await p.exists('moved:99'), 0, 'a drop taken by the replica reached the primary')
  t.equal(await p.get('from-replica'), 'x')
})
