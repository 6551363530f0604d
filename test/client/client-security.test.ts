// The client against a secure cluster (a router over HTTPS with tenants, shards with a password over
// TLS): its token on every request (HTTP mode) and on the topology fetch (direct mode), the router's
// CA, 401/403/429 as unauthorized, forbidden and rate_limited (a refused batch not sent again op by
// op), the token in no error; direct mode's shard access; the options' checks.
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { Agent, request } from 'undici'
import { createCertificateAuthority } from '../../cli/local-tls.ts'
import { createClient, type ClientOptions, type ShardlineError } from '../../client/index.ts'
import { makeTestTls } from '../helpers/certificates.ts'
import { startRouterProcess } from '../helpers/processes.ts'
import { startSecureShard } from '../helpers/secure-shard.ts'

const ALICE = 'alice-token-7f3a9c'
const ALICE_ROTATED = 'alice-token-next-51be'
const READER = 'reader-token-0d2e'
const LIMITED = 'limited-token-9a41'
const OPS = 'ops-token-c8e5'
const SHARD_PASSWORD = 'shard-password-3e6d'
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

const files = await makeTestTls(t)
const shard = await startSecureShard(t, ['--name', 's0', '--config', files.write('shard.yaml', `tls: { cert: ${files.certFile}, key: ${files.keyFile} }
auth: { internalPasswords: ['${SHARD_PASSWORD}'] }
`)])
const router = await startRouterProcess(t, files.write('router.yaml', `listen: { data: 127.0.0.1:0, admin: 127.0.0.1:0 }
tls: { cert: ${files.certFile}, key: ${files.keyFile} }
pools:
  main:
    shards: [{ name: s0, primary: 127.0.0.1:${shard.port} }]
tenants:
  - { name: alice, tokens: [${ALICE}, "sha256:${sha256(ALICE_ROTATED)}"], permissions: [read, write], namespace: alice }
  - { name: reader, tokens: [${READER}], permissions: [read], namespace: alice }
  - { name: limited, tokens: [${LIMITED}], permissions: [read, write], namespace: limited, rateLimit: { rate: 0.2, burst: 2 } }
  - { name: ops, tokens: [${OPS}], permissions: [read, admin] }
shardAccess: { password: ${SHARD_PASSWORD}, tls: { ca: ${files.caFile} } }
`))
const trusting = new Agent({ connect: { ca: files.ca.cert } })
t.teardown(() => trusting.close())

/** A client of the router (HTTP mode unless a topology is given), trusting its CA; closed when the test ends. */
function clientOf(t: Test, options: ClientOptions = {}) {
  const client = createClient({ ...(options.topology ? {} : { url: router.url, ca: files.ca.cert }), timeoutMs: 15_000, ...options })
  t.teardown(() => client.close())
  return client
}
const rejection = (promise: Promise<unknown>) => promise.then(() => {
  throw new Error('expected a rejection')
}, (error: unknown) => error as ShardlineError)
const authFailures = async (reason: string) => {
  const text = await (await request(`${router.adminUrl}/metrics`, { dispatcher: trusting })).body.text()
  return Number(new RegExp(`^shardline_router_auth_failures_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
}

t.test('with a token every call works, over HTTPS; a rotated-in (hashed) token works too', async (t) => {
  const alice = clientOf(t, { token: ALICE })
  t.equal(await alice.set('k', { a: 1 }), true)
  t.same(await alice.get('k'), { a: 1 })
  t.same(await alice.mset([['m1', 'one'], ['m2', 'two']]), [true, true])
  t.same(await alice.mget(['m1', 'm2', 'missing']), ['one', 'two', null])
  t.equal(await alice.incr('c', 5), 5n)
  t.equal(await alice.counter('c'), 5n)
  t.equal(await alice.del('m1'), true)
  t.same(await clientOf(t, { token: ALICE_ROTATED }).get('k'), { a: 1 }, 'the same tenant')
})

t.test('no token or an unknown one: unauthorized (401), and the refused batch is not sent again op by op', async (t) => {
  const anonymous = clientOf(t)
  t.match(await rejection(anonymous.get('k')), { name: 'ShardlineError', code: 'unauthorized', status: 401 })
  const before = await authFailures('missing_token')
  const errors = await Promise.all(['a', 'b', 'c'].map((key) => rejection(anonymous.get(key))))
  t.same(errors.map((error) => error.code), ['unauthorized', 'unauthorized', 'unauthorized'], 'each caller of the batch')
  t.equal(await authFailures('missing_token'), before + 1, 'one request: the batch')

  const wrong = clientOf(t, { token: `${ALICE}-but-wrong` })
  const error = await rejection(wrong.set('k', 'v'))
  t.match(error, { code: 'unauthorized', status: 401 })
  t.notMatch(`${error.message} ${error.stack} ${JSON.stringify(error)}`, ALICE, 'the token is in no part of the error')
  t.same(await clientOf(t, { token: ALICE }).get('k'), { a: 1 }, 'nothing was written')
})

t.test('a permission the tenant lacks: forbidden (403) for that call; what it may do still works', async (t) => {
  const reader = clientOf(t, { token: READER })
  t.same(await reader.get('k'), { a: 1 }, 'reads the namespace it shares with alice')
  t.match(await rejection(reader.set('k', 'overwritten')), { code: 'forbidden', status: 403 })
  t.match(await rejection(reader.incr('c')), { code: 'forbidden', status: 403 })
  const [got, set] = await Promise.all([reader.get('k'), rejection(reader.set('other', 'v'))])
  t.same(got, { a: 1 }, 'a get batched with a refused set is answered')
  t.match(set, { code: 'forbidden' })
})

t.test('past the tenant\'s rate limit: rate_limited (429) with how long to wait, not retried', async (t) => {
  const limited = clientOf(t, { token: LIMITED })
  t.equal(await limited.set('k', 1), true)
  t.equal(await limited.get('k'), 1)
  const error = await rejection(limited.get('k'))
  t.match(error, { code: 'rate_limited', status: 429 })
  t.ok(error.retryAfterMs !== undefined && error.retryAfterMs >= 1000 && error.retryAfterMs <= 5000, `retryAfterMs ${error.retryAfterMs}: the next op is let in within 5 s`)
})

t.test('the router\'s certificate is verified: refused without the CA or with another one', async (t) => {
  for (const [name, ca] of [['no ca', undefined], ['another CA', (await createCertificateAuthority('another CA')).cert]] as const) {
    const error = await rejection(clientOf(t, { url: router.url, token: ALICE, retries: 0, ca }).get('k'))
    t.match(error, { code: 'connection_error', message: /certificate/ }, name)
  }
  t.same(await clientOf(t, { token: ALICE, ca: Buffer.from(files.ca.cert) }).get('k'), { a: 1 }, 'the CA as a Buffer')
})

t.test('direct mode: the topology with an admin token over HTTPS, the shards with the shard password over TLS', async (t) => {
  const topology = { adminUrl: router.adminUrl }
  const shardAccess = { password: SHARD_PASSWORD, tls: { ca: files.caFile } }
  const direct = clientOf(t, { topology, token: OPS, ca: files.ca.cert, shardAccess })
  t.equal(await direct.set('direct-key', 'v'), true)
  t.equal(await direct.get('direct-key'), 'v')
  t.same(await clientOf(t, { token: OPS }).get('direct-key'), 'v', 'an admin tenant has no namespace: the same key through the router')
  t.match(await rejection(clientOf(t, { topology, ca: files.ca.cert, shardAccess }).get('direct-key')), { code: 'unauthorized', status: 401 })
  t.match(await rejection(clientOf(t, { topology, token: ALICE, ca: files.ca.cert, shardAccess }).get('direct-key')), { code: 'forbidden', status: 403 })
  const noPassword = await rejection(clientOf(t, { topology, token: OPS, ca: files.ca.cert, shardAccess: { tls: shardAccess.tls }, timeoutMs: 3000 }).get('direct-key'))
  t.match(noPassword, { code: 'shard_error', message: /NOAUTH Authentication required/ }, 'without the shard password the shard answers nothing else')
})

t.test('the options are checked at createClient, and a refusal never quotes a token', async (t) => {
  const refused = (options: ClientOptions, message: RegExp) => {
    try {
      void createClient(options).close()
    } catch (error) {
      t.match(error, { code: 'invalid_argument', message }, message.source)
      return error as ShardlineError
    }
    throw new Error(`createClient took ${JSON.stringify(options)}`)
  }
  const url = 'https://router:8080'
  t.notMatch(refused({ url, token: 'secret with spaces' }, /token must be a string of 1 to 4096 printable ASCII/).message, 'secret')
  refused({ url, token: 42 as unknown as string }, /token must be .*not 42/)
  refused({ url, token: '' }, /token must be/)
  refused({ url, ca: 'not a certificate' }, /ca must be a PEM certificate/)
  refused({ url, ca: 7 as unknown as string }, /ca must be a PEM certificate as a string or Buffer/)
  refused({ url: 'http://router:8080', ca: files.ca.cert }, /ca is for an https url/)
  refused({ topology: { adminUrl: 'http://router:9090' }, ca: files.ca.cert }, /ca is for an https topology.adminUrl/)
  refused({ topology: { configFile: 'router.yaml' }, token: 'x' }, /token and ca are for a router/)
  refused({ url, shardAccess: { password: 'p' } }, /shardAccess is for direct mode/)
  const topology = { adminUrl: 'http://router:9090' }
  refused({ topology, shardAccess: 'p' as never }, /shardAccess must be \{ password\?, tls\?/)
  refused({ topology, shardAccess: { password: '' } }, /shardAccess.password must be a non-empty string/)
  refused({ topology, shardAccess: { user: 'x' } as never }, /shardAccess has no option user/)
  refused({ topology, shardAccess: { tls: {} as never } }, /shardAccess.tls.ca must be a file path/)
  refused({ topology, shardAccess: { tls: { ca: 'ca.pem', cert: 'c.pem' } } }, /give cert and key together/)
  refused({ topology, shardAccess: { tls: { ca: 'ca.pem', serverName: '' } } }, /serverName must be a host name/)
  refused({ topology, shardAccess: { tls: { ca: 'ca.pem', pfx: 'x' } as never } }, /shardAccess.tls has no option pfx/)
  refused({ topology, shardAccess: { tls: { ca: `${files.dir}/no-such-ca.pem` } } }, /^shardAccess: tls: cannot read a certificate file: .*no-such-ca\.pem/)
})
