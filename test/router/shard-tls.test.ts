// The router and the rebalance job reach shards that require TLS and AUTH, as the config's
// shardAccess says: ops go through; a wrong password or a CA the shards' certificate does not chain
// to fails requests with a 503 and a log line that names the refused credential, never a secret.
import t, { type Test } from 'tap'
import { createCertificateAuthority } from '../../cli/local-tls.ts'
import { makeTestTls } from '../helpers/certificates.ts'
import { runRebalance } from '../helpers/elastic-pool.ts'
import { startRouterProcess, waitFor, type RouterProcess } from '../helpers/processes.ts'
import { shardClient, startSecureShard } from '../helpers/secure-shard.ts'

const PASSWORD = 'router-to-shard-internal-password'
const WRONG_PASSWORD = 'not-the-shard-password'
const files = await makeTestTls(t)
const shardConfig = files.write('shard.yaml', `tls: { cert: ${files.certFile}, key: ${files.keyFile} }
auth:
  internalPasswords: ['${PASSWORD}']
`)
const [s0, s1] = await Promise.all(['s0', 's1'].map((name) => startSecureShard(t, ['--name', name, '--config', shardConfig])))
const clients = [s0, s1].map((shard) => shardClient(t, shard.port, { username: 'shardline', password: PASSWORD, ca: files.ca.cert }))

// The password from a file, as a mounted Secret gives it.
const passwordFile = files.write('shard-password', `${PASSWORD}\n`)
const routerConfig = (name: string, access: string, pool = `      - { name: s0, primary: 127.0.0.1:${s0.port} }
      - { name: s1, primary: 127.0.0.1:${s1.port} }`) => files.write(`${name}.yaml`, `listen:
  data: 127.0.0.1:0
  admin: 127.0.0.1:0
shardAccess:
${access}
pools:
  main:
    shards:
${pool}
`)
const access = `  password: { file: ${passwordFile} }
  tls: { ca: ${files.caFile} }`
const router = await startRouterProcess(t, routerConfig('router', access))

const api = async (target: RouterProcess, path: string, init: RequestInit = {}) => {
  const response = await fetch(`${target.url}${path}`, init)
  return { status: response.status, body: await response.json() }
}
const post = (path: string, body: unknown) => api(router, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

t.test('ops reach the shards over TLS, authenticated', async (t) => {
  for (let i = 0; i < 20; i++) t.same(await post(`/user:${i}`, { value: i }), { status: 200, body: { stored: true } })
  t.same(await api(router, '/user:7'), { status: 200, body: { value: 7 } })
  t.same(await post('/visits/incr', { by: 3 }), { status: 200, body: { value: 3 } })
  t.same(await api(router, '/user:7', { method: 'DELETE' }), { status: 200, body: { deleted: true } })
  const held = await Promise.all(clients.map((client) => client.dbsize()))
  t.ok(held[0] > 0 && held[1] > 0, `both shards hold keys (${held.join(', ')})`)
  t.same((await (await fetch(`${router.adminUrl}/readyz`)).json()), { status: 'ready' })
})

t.test('the rebalance job reaches the shards with the same access', async (t) => {
  const pipeline = clients[0].pipeline()
  for (let i = 0; i < 50; i++) pipeline.set(`moving:${i}`, `"v${i}"`)
  await pipeline.exec()
  const before = await clients[1].dbsize()
  const drain = routerConfig('drain', access, `      - { name: s0, primary: 127.0.0.1:${s0.port}, draining: true }
      - { name: s1, primary: 127.0.0.1:${s1.port} }`)
  const job = await runRebalance(t, drain)
  t.equal(job.code, 0, job.output)
  t.equal(job.summary?.failed, 0)
  t.equal(await clients[0].dbsize(), 0, 'the draining shard is empty')
  t.ok((await clients[1].dbsize()) >= before + 50, 'its keys are on the other shard')
  t.notMatch(job.output, PASSWORD)
})

t.test('a reload naming a password that cannot be read is refused; the running access keeps serving', async (t) => {
  const file = routerConfig('router', `  password: { env: SHARDLINE_TEST_UNSET_PASSWORD }
  tls: { ca: ${files.caFile} }`)
  t.equal(file, `${files.dir}/router.yaml`, 'the running router\'s own file is rewritten')
  await waitFor(() => /environment variable SHARDLINE_TEST_UNSET_PASSWORD is not set/.test(router.output()), 5000, () => `the reload was not refused:\n${router.output()}`)
  t.match(router.output(), /config refused; the last good config keeps serving/)
  t.same(await post('/after-refused-reload', { value: 1 }), { status: 200, body: { stored: true } })
})

/** A router whose shard access the shards refuse: its requests fail with a 503, and its log says why. */
async function refusedRouter(t: Test, name: string, refusedAccess: string): Promise<RouterProcess> {
  const refused = await startRouterProcess(t, routerConfig(name, refusedAccess))
  const reply = await api(refused, '/user:1')
  t.equal(reply.status, 503, JSON.stringify(reply.body))
  t.match(reply.body.code, /^(shard_unavailable|no_healthy_destination)$/)
  t.equal((await fetch(`${refused.adminUrl}/readyz`)).status, 503, 'not ready')
  return refused
}

t.test('a wrong password: requests fail with 503, the log names the credential, never the secret', async (t) => {
  const refused = await refusedRouter(t, 'wrong-password', `  password: ${WRONG_PASSWORD}
  tls: { ca: ${files.caFile} }`)
  await waitFor(() => /refused the credential of user shardline \(shardAccess\.password\): WRONGPASS/.test(refused.output()), 5000, () => `no log line names the refused credential:\n${refused.output()}`)
  t.notMatch(refused.output(), WRONG_PASSWORD)
  t.notMatch(refused.output(), PASSWORD)
})

t.test('a CA the shards\' certificate does not chain to: requests fail with 503, the log says the TLS handshake failed', async (t) => {
  const otherCa = await createCertificateAuthority('another CA')
  const refused = await refusedRouter(t, 'wrong-ca', `  password: ${PASSWORD}
  tls: { ca: ${files.write('other-ca.pem', otherCa.cert)} }`)
  await waitFor(() => /TLS handshake failed \(unable to verify the first certificate/.test(refused.output()), 5000, () => `no log line says the handshake failed:\n${refused.output()}`)
  t.notMatch(refused.output(), PASSWORD)
})
