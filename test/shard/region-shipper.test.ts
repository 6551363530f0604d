// The region shipper against a fake peer router: what crosses (local ops only, by mode), in order,
// resent after a broken link, parked after a TRYAGAIN (within a bound) while the rest goes on,
// refused ops skipped, full scans when the peer may lack data, the handshake, and the lag it reports.
import t from 'tap'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { readFileSync } from 'node:fs'
import type { RegionMode } from '../../common/region.ts'
import { ClientTls } from '../../common/tls-files.ts'
import { entryIsTombstone, entryVersion } from '../../shard/entry.ts'
import { registerRegionMetrics } from '../../shard/region-metrics.ts'
import { PARKED_OPS_MAX, RegionShipper } from '../../shard/region-shipper.ts'
import { Replication } from '../../shard/replication.ts'
import { Store } from '../../shard/store.ts'
import { startFakePeer, type FakePeer } from '../helpers/fake-region-peer.ts'
import { makeTestTls } from '../helpers/certificates.ts'
import { waitFor, type Teardown } from '../helpers/processes.ts'

interface Setup {
  mode?: RegionMode
  tls?: ClientTls
  backlogBytes?: number
  password?: string
  maxInFlightOps?: number
  scanKeysPerSecond?: number
  /** Runs before the shipper starts: what the store holds at the first contact. */
  before?: (store: Store) => void
}

async function ship(t: Teardown, peer: FakePeer, setup: Setup = {}) {
  const logLines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'info' }, new Writable({
    write(chunk, _encoding, done) {
      logLines.push(JSON.parse(chunk.toString()))
      done()
    },
  }))
  const store = new Store({ maxMemory: 64 * 1024 * 1024, policy: 'lru', regionId: 1 })
  const replication = new Replication({
    replicaOf: null,
    replicas: [],
    backlogBytes: setup.backlogBytes ?? 1024 * 1024,
    maxPeerBufferBytes: 1024 * 1024,
    warmupTimeoutMs: 0,
    timeoutMs: 2000,
    heartbeatMs: 100,
    catchUp: { stallMs: 500, timeoutMs: 0 },
  }, store, logger, () => 'test', 1024 * 1024, { tls: null, password: null })
  const log = replication.openLog()
  setup.before?.(store)
  const shipper = new RegionShipper({
    region: {
      name: 'east',
      id: 1,
      pool: 'main',
      mode: setup.mode ?? 'replicate',
      peers: [],
      maxInFlightOps: setup.maxInFlightOps ?? 1024,
      scanKeysPerSecond: setup.scanKeysPerSecond ?? 100_000,
      helloMs: 50,
    },
    peer: { name: peer.name, router: peer.address, password: null, tls: null },
    log,
    store,
    logger,
    tls: setup.tls ?? null,
    password: setup.password === undefined ? null : () => setup.password!,
    replyTimeoutMs: 1000,
  })
  replication.onLogged(() => shipper.logged())
  shipper.start()
  t.teardown(() => {
    shipper.close()
    replication.close()
  })
  const registry = new Registry()
  registerRegionMetrics(registry, [shipper])
  const metric = async (name: string, labels = 'peer="west"') => {
    const text = await registry.metrics()
    const match = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text)
    return match ? Number(match[1]) : null
  }
  // Caught up: connected, nothing queued, nothing in flight, no scan running.
  const caughtUp = (what = 'the shipper to catch up') => waitFor(() => {
    const state = shipper.describe()
    return state.connected && state.queuedOps === 0 && state.inFlight === 0 && state.scan === null
  }, 10_000, () => `${what}: ${JSON.stringify(shipper.describe())}`)
  return { store, replication, log, shipper, logLines, metric, caughtUp }
}

/** The applied commands as "op key" (and the rest of their arguments, for the ones asked). */
const opsAndKeys = (peer: FakePeer) => peer.applied().map((args) => `${args[2]} ${args[3]}`)

t.test('local writes cross in order, each wrapped for the peer router; foreign ops, SL.DROP and FLUSHALL never do', async (t) => {
  const peer = await startFakePeer(t)
  const { store, replication, shipper, metric, caughtUp, logLines } = await ship(t, peer, { password: 's3cret', before: (store) => store.set('before', 'old') })
  await caughtUp('the first scan')
  t.same(peer.commands[0], ['AUTH', 'region', 's3cret'], 'AUTH region <password> first')
  t.same(peer.commands[1], ['SL.REGION.HELLO', 'east', '1', 'main'], 'then HELLO <origin> <id> <pool>')
  t.same(opsAndKeys(peer), ['SL.PUTV before'], 'the first contact ships every key by a full scan')
  t.ok(logLines.some((line) => line.msg === 'region full scan started' && line.keys === 1), 'the scan is logged with its key count')
  t.ok(logLines.some((line) => line.msg === 'region full scan finished'))

  store.set('a', 'va')
  store.set('b', 'vb', { ttlMs: 60_000 })
  store.incrBy('counter', 5n)
  store.delete('a')
  store.set('local', 'l')
  replication.fromRegion(() => store.set('foreign', 'x'))
  t.ok(store.dropIfNotNewer('b', entryVersion(store.peekEntry('b')!)), 'an eviction or a moved key: SL.DROP in the log')
  store.set('last', 'z')
  store.clear()
  await caughtUp()
  const applied = peer.applied()
  t.same(opsAndKeys(peer), ['SL.PUTV before', 'SL.SETV a', 'SL.SETV b', 'SL.PUTE counter', 'SL.DELV a', 'SL.SETV local', 'SL.SETV last'], 'in log order; the foreign write, the drop and the flush stay here')
  for (const args of applied) t.same(args.slice(0, 2), ['east', 'main'], 'each names its origin region and pool')
  t.same(applied[1].slice(4, 5), ['va'])
  t.equal(applied[2][6], 'PX', 'a TTL crosses as time left')
  t.ok(Number(applied[2][7]) > 59_000 && Number(applied[2][7]) <= 60_000)
  t.equal(shipper.counts.shippedOps, 7)
  t.equal(shipper.counts.rejected, 0)
  t.equal(await metric('shardline_region_shipped_ops_total'), 7)
  t.ok((await metric('shardline_region_shipped_bytes_total'))! > 100)
  t.equal(await metric('shardline_region_connected'), 1)
  t.equal(await metric('shardline_region_lag_seconds'), 0)
  t.equal(await metric('shardline_region_queue_ops'), 0)
  t.equal(await metric('shardline_region_resyncs_total', 'peer="west",kind="full"'), 1)
  t.equal(await metric('shardline_region_resyncs_total', 'peer="west",kind="partial"'), 0)
})

t.test('invalidate mode ships deletes only, and its scans only tombstones', async (t) => {
  const peer = await startFakePeer(t)
  const { store, caughtUp } = await ship(t, peer, {
    mode: 'invalidate',
    before: (store) => {
      store.set('live', 'v')
      store.set('gone', 'v')
      store.delete('gone')
    },
  })
  await caughtUp()
  store.set('x', '1')
  store.incrBy('n', 1n)
  store.delete('x')
  await caughtUp()
  t.same(opsAndKeys(peer), ['SL.PUTV gone', 'SL.DELV x'])
  const scanned = peer.applied()[0][4]
  t.ok(entryIsTombstone(scanned), 'the scanned entry is the tombstone')
})

t.test('at most maxInFlightOps go unanswered; a broken link resends from the cursor (a partial resync)', async (t) => {
  const peer = await startFakePeer(t)
  const { store, shipper, caughtUp, metric } = await ship(t, peer, { maxInFlightOps: 4 })
  await caughtUp()
  peer.stalled = true
  for (let i = 0; i < 10; i++) store.set(`k${i}`, String(i))
  await waitFor(() => peer.applied().length === 4, 5000, () => `4 ops sent: ${opsAndKeys(peer)}`)
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(peer.applied().length, 4, 'the fifth waits for a reply')
  t.ok((await metric('shardline_region_queue_ops'))! >= 10, 'the queue holds what was not acknowledged')
  peer.dropAll()
  peer.release()
  await caughtUp('a resend after the link came back')
  const arrived = opsAndKeys(peer)
  const expected = Array.from({ length: 10 }, (_, i) => `SL.SETV k${i}`)
  t.same(arrived.slice(-10), expected, 'everything from the cursor on was sent again, in order')
  t.same(arrived.slice(0, 4), expected.slice(0, 4), 'the first ones went before the link broke')
  t.equal(shipper.counts.resyncs.partial, 1, 'a partial resync')
  t.equal(shipper.counts.resyncs.full, 1, 'no second scan')
})

t.test('TRYAGAIN and LOADING park the op and the others go on; it is sent again until applied; other errors are counted and skipped', async (t) => {
  const peer = await startFakePeer(t)
  const { store, shipper, caughtUp, metric, logLines } = await ship(t, peer)
  await caughtUp()
  let retries = 3
  peer.answer = (args) => {
    if (args[4] === 'busy' && retries > 0) return retries-- % 2 === 0 ? '-LOADING shard is warming up\r\n' : '-TRYAGAIN the owning shard is unreachable\r\n'
    if (args[4] === 'bad') return '-ERR pool main takes no region writes\r\n'
    return undefined
  }
  store.set('before', '1')
  store.set('busy', '2')
  store.set('bad', '3')
  store.set('after', '4')
  await caughtUp()
  const arrived = opsAndKeys(peer)
  t.equal(arrived.filter((op) => op === 'SL.SETV busy').length, 4, 'sent until it was applied')
  t.same(['before', 'bad', 'after'].map((key) => arrived.filter((op) => op === `SL.SETV ${key}`).length), [1, 1, 1], 'the ops around it went once each: they did not wait for it')
  t.ok(arrived.lastIndexOf('SL.SETV busy') > arrived.indexOf('SL.SETV after'), 'it was applied after the newer ops')
  t.equal(shipper.counts.rejected, 1, 'the refused op is counted once')
  t.equal(await metric('shardline_region_rejected_total'), 1)
  t.ok(logLines.some((line) => line.msg === 'region link: the peer region refused an op for good; skipped' && line.key === 'bad'), 'and logged')
})

t.test('one key the peer cannot apply holds up no other: it stays parked, counted in the lag, until its shard is back', async (t) => {
  const peer = await startFakePeer(t)
  const { store, shipper, caughtUp, metric } = await ship(t, peer)
  await caughtUp()
  let down = true
  peer.answer = (args) => (args[4] === 'stuck' && down ? '-TRYAGAIN the owning shard is unreachable\r\n' : undefined)
  store.set('stuck', 'v1')
  for (let i = 0; i < 20; i++) store.set(`free${i}`, String(i))
  await waitFor(() => Array.from({ length: 20 }, (_, i) => `SL.SETV free${i}`).every((op) => opsAndKeys(peer).includes(op)), 5000, () => `the other keys crossed: ${opsAndKeys(peer)}`)
  t.equal(shipper.describe().parkedOps, 1, 'the refused op is parked')
  t.equal(await metric('shardline_region_parked_ops'), 1, 'and exported')
  await waitFor(async () => (await metric('shardline_region_lag_seconds'))! >= 0.2, 5000, () => 'the lag to count the parked op')
  t.ok((await metric('shardline_region_queue_ops'))! >= 1, 'and the queue')
  // A broken link while an op is parked: the resend starts at the parked op.
  peer.dropAll()
  await waitFor(() => peer.accepted === 2, 5000, () => 'a reconnect')
  down = false
  await caughtUp('the parked op to be applied')
  const arrived = opsAndKeys(peer)
  t.ok(arrived.filter((op) => op === 'SL.SETV stuck').length >= 2, 'it was sent again until applied')
  t.equal(await metric('shardline_region_parked_ops'), 0, 'nothing parked any more')
  t.equal(await metric('shardline_region_lag_seconds'), 0, 'the lag is back to 0')
})

t.test(`more than ${PARKED_OPS_MAX} parked ops: the link waits instead, and nothing is lost`, async (t) => {
  const peer = await startFakePeer(t)
  const { store, shipper, caughtUp, logLines } = await ship(t, peer, { backlogBytes: 16 * 1024 * 1024 })
  await caughtUp()
  let refusing = true
  peer.answer = (args) => (refusing && args[0] === 'SL.REGION.APPLY' ? '-TRYAGAIN the owning shard is unreachable\r\n' : undefined)
  const keys = PARKED_OPS_MAX + 50
  let mostParked = 0
  const sampler = setInterval(() => (mostParked = Math.max(mostParked, shipper.describe().parkedOps as number)), 5)
  t.teardown(() => clearInterval(sampler))
  for (let i = 0; i < keys; i++) store.set(`k${i}`, String(i))
  const waits = 'region link: the peer region cannot apply ops now (its owning shard is unreachable or loading); resending'
  await waitFor(() => logLines.some((line) => line.msg === waits), 10_000, () => `the link to wait once the bound was reached: ${JSON.stringify(shipper.describe())}`)
  t.ok(mostParked > 0, `ops were parked first (${mostParked} seen)`)
  refusing = false
  await caughtUp('everything to be applied once the peer takes ops again')
  clearInterval(sampler)
  t.ok(mostParked <= PARKED_OPS_MAX, `never more parked than the bound (at most ${mostParked})`)
  const applied = new Set(opsAndKeys(peer))
  t.equal(Array.from({ length: keys }, (_, i) => `SL.SETV k${i}`).filter((op) => !applied.has(op)).length, 0, 'every op reached the peer')
})

t.test('the lag grows while the peer stalls and goes back to 0 once it answers', async (t) => {
  const peer = await startFakePeer(t)
  const { store, caughtUp, metric } = await ship(t, peer)
  await caughtUp()
  peer.stalled = true
  store.set('slow', 'v')
  // The stall stays under the reply timeout (1 s): the link is not cut.
  await waitFor(async () => (await metric('shardline_region_lag_seconds'))! >= 0.3, 5000, () => 'the lag to grow')
  t.equal(await metric('shardline_region_queue_ops'), 1)
  peer.release()
  await waitFor(async () => (await metric('shardline_region_lag_seconds')) === 0, 5000, () => 'the lag to return to 0')
  await caughtUp()
  t.equal(peer.accepted, 1, 'on the same connection')
})

t.test('a peer that stops answering is cut off after the reply timeout and the ops go again', async (t) => {
  const peer = await startFakePeer(t)
  const { store, shipper, caughtUp } = await ship(t, peer)
  await caughtUp()
  peer.stalled = true
  store.set('k', 'v')
  await waitFor(() => peer.accepted === 2, 5000, () => 'a reconnect after the reply timeout')
  peer.release()
  await caughtUp()
  t.equal(opsAndKeys(peer).filter((op) => op === 'SL.SETV k').length >= 2, true)
  t.equal(shipper.counts.resyncs.partial, 1)
})

t.test('a full scan again when a peer shard shows a new writer id; "?" never starts one', async (t) => {
  const peer = await startFakePeer(t)
  peer.incarnation = 's0=aaa,s1=?'
  const { shipper, caughtUp, logLines } = await ship(t, peer, { before: (store) => store.set('kept', 'v') })
  await caughtUp()
  t.equal(shipper.counts.resyncs.full, 1)
  peer.incarnation = 's0=?,s1=bbb'
  const hellos = () => peer.commands.filter((args) => args[0] === 'SL.REGION.HELLO').length
  const seen = hellos()
  await waitFor(() => hellos() > seen + 2, 5000, () => 'more HELLOs')
  t.equal(shipper.counts.resyncs.full, 1, 'an unanswered id, or the first id of a shard, is no restart')
  peer.incarnation = 's0=ccc,s1=bbb'
  await waitFor(() => shipper.counts.resyncs.full === 2, 5000, () => 'a second full scan')
  await caughtUp()
  t.same(opsAndKeys(peer), ['SL.PUTV kept', 'SL.PUTV kept'])
  t.ok(logLines.some((line) => line.msg === 'region full scan started' && line.reason === 'peer shard s0 restarted'))
  t.match(shipper.describe(), { incarnation: 's0=ccc,s1=bbb', peerRegionId: 2 })
})

t.test('a cursor that fell out of the backlog brings a full scan of the current values', async (t) => {
  const peer = await startFakePeer(t)
  const { store, shipper, caughtUp } = await ship(t, peer, { backlogBytes: 2048 })
  await caughtUp()
  peer.refusing = true
  peer.dropAll()
  await waitFor(() => !shipper.connected, 5000)
  for (let i = 0; i < 200; i++) store.set(`key${i % 20}`, `value${i}`)
  peer.refusing = false
  await waitFor(() => shipper.counts.resyncs.full === 2, 10_000, () => `a second scan: ${JSON.stringify(shipper.describe())}`)
  await caughtUp()
  const scanned = peer.applied().filter((args) => args[2] === 'SL.PUTV')
  t.equal(scanned.length, 20, 'every key once')
  t.ok(scanned.some((args) => args[3] === 'key19' && args[4].endsWith('value199')), 'with its latest value')
  t.equal(shipper.counts.resyncs.partial, 0)
})

t.test('a full scan keeps to scanKeysPerSecond', async (t) => {
  const peer = await startFakePeer(t)
  const startedAt = Date.now()
  const { caughtUp } = await ship(t, peer, {
    scanKeysPerSecond: 100,
    before: (store) => {
      for (let i = 0; i < 60; i++) store.set(`k${i}`, 'v')
    },
  })
  await caughtUp()
  t.equal(peer.applied().length, 60)
  t.ok(Date.now() - startedAt >= 400, `60 keys at 100 a second take about half a second (took ${Date.now() - startedAt} ms)`)
})

t.test('a hostile or wrong peer is cut off, and the shard goes on shipping once it behaves', async (t) => {
  const peer = await startFakePeer(t)
  let mode: 'garbage' | 'huge' | 'wrong region' | 'auth' | 'fine' = 'garbage'
  peer.answer = (args) => {
    if (args[0] === 'AUTH' && mode === 'auth') return '-WRONGPASS invalid username-password pair\r\n'
    if (args[0] !== 'SL.REGION.APPLY') return undefined
    if (mode === 'garbage') return '?not resp\r\n'
    if (mode === 'huge') return `$${2 * 1024 * 1024}\r\n${'x'.repeat(2 * 1024 * 1024)}\r\n`
    return undefined
  }
  const { store, shipper, caughtUp, logLines } = await ship(t, peer, { password: 'pw', before: (store) => store.set('k', 'v') })
  await waitFor(() => peer.accepted >= 2, 5000, () => 'a reconnect after garbage')
  mode = 'huge'
  const accepted = peer.accepted
  await waitFor(() => peer.accepted >= accepted + 2, 10_000, () => 'reconnects after huge replies')
  mode = 'auth'
  // The shipper may have got in (and caught up) just before the switch: make it connect again.
  peer.dropAll()
  await waitFor(() => logLines.some((line) => String(line.msg).includes('refused this shard\'s password')), 10_000, () => 'the refused password logged')
  t.notOk(shipper.connected)
  mode = 'fine'
  peer.name = 'elsewhere'
  await waitFor(() => logLines.some((line) => String(line.msg).includes('is not that region')), 10_000, () => 'a wrong region noticed')
  peer.name = 'west'
  await caughtUp()
  store.set('after', 'v')
  await caughtUp()
  t.same(opsAndKeys(peer).slice(-2), ['SL.PUTV k', 'SL.SETV after'], 'the scan and the log went through in the end')
})

t.test('over TLS, the peer router\'s certificate is verified against peers[].tls.ca', async (t) => {
  const files = await makeTestTls(t)
  const peer = await startFakePeer(t, { tls: { cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8') } })
  const trusting = new ClientTls({ ca: files.caFile })
  t.teardown(() => trusting.close())
  const { store, caughtUp } = await ship(t, peer, { tls: trusting, before: (store) => store.set('k', 'v') })
  await caughtUp()
  store.set('over-tls', 'v')
  await caughtUp()
  t.same(opsAndKeys(peer), ['SL.PUTV k', 'SL.SETV over-tls'])

  const other = await makeTestTls(t)
  const stranger = await startFakePeer(t, { tls: { cert: readFileSync(other.certFile, 'utf8'), key: readFileSync(other.keyFile, 'utf8') } })
  const { shipper, logLines } = await ship(t, stranger, { tls: trusting })
  await waitFor(() => logLines.some((line) => String(line.msg).includes('cannot reach') && /certificate/.test(String(line.why))), 5000, () => `a refused certificate logged: ${JSON.stringify(logLines)}`)
  t.notOk(shipper.connected, 'a router whose certificate another CA signed gets nothing')
  t.same(stranger.commands, [])
})
