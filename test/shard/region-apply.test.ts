// A real shard taking another region's writes: SL.REGION.APPLY of each op applies if newer, reaches
// the local replica and is never shipped back; SL.REGION.ID; both internal; bad arguments answered
// with -ERR; and the region id in every version the shard's clock issues.
import t from 'tap'
import { REGION_SLOTS } from '../../common/hlc.ts'
import { rebaseExpiry } from '../../shard/entry.ts'
import { Store } from '../../shard/store.ts'
import { startFakePeer } from '../helpers/fake-region-peer.ts'
import { startShardProcess, waitFor } from '../helpers/processes.ts'
import { FAST, configFile, converged, startPair } from '../helpers/shard-pair.ts'
import { shardClient } from '../helpers/secure-shard.ts'

const regionYaml = (peer: string | null) => `region:
  name: east
  id: 3
  pool: main
  helloMs: 100
  peers:${peer === null ? ' []' : `\n    - name: west\n      router: ${peer}`}
`

const failure = (promise: Promise<unknown>) => promise.then((value) => `no error: ${JSON.stringify(value)}`, (error: Error) => error.message)

/** A shard of the other region: its packed entries as it would send them (expiry as time left). */
const west = new Store({ maxMemory: 4 * 1024 * 1024, policy: 'lru', regionId: 2 })
const westEntry = (key: string) => Buffer.from(rebaseExpiry(west.peekEntry(key)!, Date.now(), 0), 'latin1')

const regionStats = async (adminUrl: string) => (await (await fetch(`${adminUrl}/stats`)).json()).region

t.test('each op applies if newer, reaches the replica, and is never shipped back', async (t) => {
  const peer = await startFakePeer(t)
  const pair = await startPair(t, FAST + regionYaml(peer.address))
  const [p, r] = [pair.client(pair.primary), pair.client(pair.replica)]
  const caughtUp = () => waitFor(async () => {
    const [state] = (await regionStats(pair.primary.adminUrl)).peers
    return state.connected && state.scan === null && state.queuedOps === 0 && state.inFlight === 0
  }, 10_000, () => 'the primary to catch up with the fake peer')
  await caughtUp()
  const shippedBefore = peer.applied().length
  const version = (Date.now() - 1000) * 2048 + 2
  const apply = (...args: Array<string | number | Buffer>) => p.call('SL.REGION.APPLY', 'west', ...args.map((arg) => (Buffer.isBuffer(arg) ? arg : String(arg))))

  t.equal(await apply('SL.SETV', 'k', 'from-west', version, 'PX', 60_000), 1, 'SL.SETV applies')
  t.equal(await apply('SL.SETV', 'k', 'older', version - 16), 0, 'an older version does not')
  t.equal(await apply('SL.SETV', 'k', 'same', version), 0, 'nor the same one')
  t.equal(await p.get('k'), 'from-west')
  t.ok((await p.pttl('k')) > 50_000, 'with its time left')
  t.equal(await apply('sl.delv', 'k', version + 16), 1, 'SL.DELV applies (any letter case)')
  t.equal(await p.get('k'), null)
  t.equal(await apply('SL.SETV', 'k', 'revived', version + 8), 0, 'the tombstone holds against older writes')

  await p.set('src', 'local')
  west.set('copied', 'putv-value')
  t.equal(await apply('SL.PUTV', 'copied', westEntry('copied')), 1, 'SL.PUTV applies')
  t.equal(await p.get('copied'), 'putv-value')
  await p.incrby('ctr', 5)
  west.incrBy('ctr', 7n)
  t.equal(await apply('SL.PUTE', 'ctr', westEntry('ctr')), 1, 'SL.PUTE merges a counter')
  t.equal(await p.get('ctr'), '12', 'increments in both regions count')
  t.equal(await apply('SL.PUTE', 'ctr', westEntry('ctr')), 0, 'the same entry again changes nothing')
  west.incrBy('ctr', 1n)
  await apply('SL.PUTE', 'ctr', westEntry('ctr'))
  t.equal(await p.get('ctr'), '13', 'the other region\'s next increment replaces its component')

  await p.set('marker', 'last')
  await converged(p, r)
  t.equal(await r.get('copied'), 'putv-value', 'the replica has the foreign writes')
  t.equal(await r.get('ctr'), '13')
  await caughtUp()
  t.same(peer.applied().slice(shippedBefore).map((args) => `${args[2]} ${args[3]}`), ['SL.SETV src', 'SL.PUTE ctr', 'SL.SETV marker'], 'only the local writes were shipped')

  const replicaRegion = await regionStats(pair.replica.adminUrl)
  t.same(replicaRegion.peers, [], 'a replica ships nothing: its primary does')
  const id = await p.call('SL.REGION.ID')
  t.equal(id, (await regionStats(pair.primary.adminUrl)).writerId, 'SL.REGION.ID is the writer id')
  t.not(await r.call('SL.REGION.ID'), id, 'each process has its own')
  t.match(await p.info('region'), /region_name:east\r\nregion_id:3\r\n[^]*region_peer0:name=west,connected=1,/, 'INFO region')

  for (let i = 0; i < 20; i++) await p.set(`v${i}`, 'x')
  for (let i = 0; i < 20; i++) {
    const [, issued] = (await p.call('SL.GETV', `v${i}`)) as [string, number]
    if (issued % REGION_SLOTS !== 3) t.fail(`version ${issued} is not in region 3's slot`)
  }
  t.pass('every version the shard issued is ≡ 3 mod 16')
})

t.test('bad SL.REGION.APPLY arguments get -ERR, and the shard goes on (a standalone shard ships too)', async (t) => {
  const peer = await startFakePeer(t)
  const shard = await startShardProcess(t, ['--config', configFile(regionYaml(peer.address))])
  const redis = shardClient(t, shard.port)
  const cases: Array<[string, Array<string | Buffer>, RegExp]> = [
    ['too few arguments', ['west', 'SL.SETV'], /^ERR wrong number of arguments for 'sl\.region\.apply'/],
    ['an op that does not cross', ['west', 'SET', 'k', 'v'], /^ERR SL\.REGION\.APPLY takes SL\.SETV, SL\.DELV, SL\.PUTE, SL\.PUTV, not 'SET'/],
    ['a bad origin', ['West Coast', 'SL.DELV', 'k', '16'], /^ERR invalid origin region name/],
    ['a long origin', ['w'.repeat(100), 'SL.DELV', 'k', '16'], /^ERR invalid origin region name/],
    ['SL.SETV without a version', ['west', 'SL.SETV', 'k', 'v'], /^ERR wrong number of arguments for 'sl\.setv'/],
    ['SL.DELV with too many', ['west', 'SL.DELV', 'k', '16', 'x'], /^ERR wrong number of arguments for 'sl\.delv'/],
    ['a version that is no number', ['west', 'SL.SETV', 'k', 'v', 'soon'], /^ERR value is not an integer/],
    ['a version far ahead', ['west', 'SL.SETV', 'k', 'v', String(Number.MAX_SAFE_INTEGER)], /^ERR version is too far ahead/],
    ['a bad option', ['west', 'SL.SETV', 'k', 'v', '16', 'NX'], /^ERR syntax error/],
    ['a malformed entry', ['west', 'SL.PUTV', 'k', 'short'], /^ERR malformed entry/],
    ['an empty key', ['west', 'SL.DELV', '', '16'], /^ERR empty key/],
    ['a key too long', ['west', 'SL.DELV', 'k'.repeat(1000), '16'], /^ERR key too long/],
  ]
  for (const [what, args, expected] of cases) t.match(await failure(redis.call('SL.REGION.APPLY', ...args)), expected, what)
  t.equal(await redis.ping(), 'PONG', 'the shard answers on')
  t.equal(await redis.dbsize(), 0, 'nothing was written')
  await redis.set('x', 'local')
  await waitFor(() => peer.applied().length > 0, 10_000, () => 'the standalone shard to ship its write')
  t.same(peer.applied().map((args) => args.slice(0, 5)), [['east', 'main', 'SL.SETV', 'x', 'local']], 'its own write, and nothing of the refused ones')
  t.equal(shard.child.exitCode, null)
})

t.test('SL.REGION.APPLY and SL.REGION.ID are internal commands', async (t) => {
  const shard = await startShardProcess(t, ['--config', configFile(`auth:\n  passwords: [data-pw]\n  internalPasswords: [peer-pw]\n${regionYaml(null)}`)])
  const anonymous = shardClient(t, shard.port)
  t.match(await failure(anonymous.call('SL.REGION.ID')), /^NOAUTH/)
  const tenant = shardClient(t, shard.port, { password: 'data-pw' })
  await waitFor(() => tenant.status === 'ready', 5000)
  t.match(await failure(tenant.call('SL.REGION.APPLY', 'west', 'SL.DELV', 'k', '16')), /^NOPERM this user has no permissions to run the 'sl\.region\.apply' command/)
  t.match(await failure(tenant.call('SL.REGION.ID')), /^NOPERM/)
  const internal = shardClient(t, shard.port, { username: 'shardline', password: 'peer-pw' })
  t.equal(await internal.call('SL.REGION.APPLY', 'west', 'SL.DELV', 'k', String(Date.now() * 2048)), 0)
  t.match(await internal.call('SL.REGION.ID'), /^[A-Za-z0-9_-]+$/)
})
