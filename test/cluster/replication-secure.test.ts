// Replication between shards that require TLS and AUTH: both links (replica -> primary and the
// primary's write-back) verify their peer's certificate and authenticate as the internal user, and
// carry writes; a link whose password the peer refuses says so (without the secret) and keeps retrying.
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { makeTestTls } from '../helpers/certificates.ts'
import { freePort, run, waitFor, type ShardProcess, type Teardown } from '../helpers/processes.ts'
import { adminGet, shardClient, startSecureShard } from '../helpers/secure-shard.ts'

const CLI = fileURLToPath(new URL('../../cli/shardline.ts', import.meta.url))
const files = await makeTestTls(t)
const password = 'replication-test-internal-password'
const wrongPassword = 'replication-test-other-password'
const shardYaml = (internal: string, tls = `tls: { cert: ${files.certFile}, key: ${files.keyFile}, peers: { ca: ${files.caFile} } }`) => `${tls}
auth:
  passwords: ['replication-test-ordinary-password']
  internalPasswords: ['${internal}']
replication:
  timeoutMs: 2000
  heartbeatMs: 50
`
// Every client here trusts the CA and presents a certificate of it (the shards of the mutual-TLS pair ask for one).
const tlsClient = { ca: files.ca.cert, cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8') }
const replication = async (shard: ShardProcess) => JSON.parse((await adminGet(`${shard.adminUrl}/stats`, { token: password, ...tlsClient })).text).replication

async function startPair(t: Teardown, yaml: string) {
  const config = files.write(`shard-${randomUUID()}.yaml`, yaml)
  const [primaryPort, replicaPort] = [await freePort(), await freePort()]
  const [primary, replica] = await Promise.all([
    startSecureShard(t, ['--name', 'p', '--port', String(primaryPort), '--replicas', `127.0.0.1:${replicaPort}`, '--config', config]),
    startSecureShard(t, ['--name', 'r', '--port', String(replicaPort), '--replicaof', `127.0.0.1:${primaryPort}`, '--config', config]),
  ])
  await waitFor(async () => (await adminGet(`${primary.adminUrl}/readyz`, tlsClient)).status === 200, 10_000, () => 'the primary to warm up from its replica')
  await waitFor(async () => (await replication(replica)).upstream.state === 'streaming', 10_000, () => 'the replica to stream from its primary')
  return { primary, replica, primaryPort }
}

/** Writes through the primary and reads them on the replica; both links stream. */
async function carriesWrites(t: Test, primary: ShardProcess, replica: ShardProcess) {
  const writer = shardClient(t, primary.port, { password, ...tlsClient })
  const reader = shardClient(t, replica.port, { password, ...tlsClient })
  for (let i = 0; i < 50; i++) await writer.set(`k${i}`, `v${i}`)
  await waitFor(async () => (await reader.get('k49')) === 'v49', 5000, () => 'the last write to reach the replica')
  t.same(await reader.mget('k0', 'k25', 'k49'), ['v0', 'v25', 'v49'])
  t.same((await replication(primary)).writeBack.map((link: { state: string }) => link.state), ['streaming'])
}

const { primary, replica, primaryPort } = await startPair(t, shardYaml(password))

t.test('writes to the primary reach the replica over TLS, and the write-back link is up too', async (t) => {
  await carriesWrites(t, primary, replica)
})

t.test('with client certificates required and no peers settings, links present the shard\'s own certificate', async (t) => {
  const mutual = await startPair(t, shardYaml(password, `tls: { cert: ${files.certFile}, key: ${files.keyFile}, clientCa: ${files.caFile} }`))
  await carriesWrites(t, mutual.primary, mutual.replica)
})

t.test('a refused internal password is logged without the secret, and the link keeps retrying', async (t) => {
  const stranger = await startSecureShard(t, ['--name', 'stranger', '--replicaof', `127.0.0.1:${primaryPort}`, '--config', files.write('stranger.yaml', shardYaml(wrongPassword))])
  await waitFor(() => (stranger.output().match(/the peer refused this shard's internal password/g) ?? []).length >= 1, 10_000, () => 'the refusal to be logged')
  const refusals = async () => Number(/^shardline_shard_auth_failures_total\{reason="wrongpass",shard="p"\} (\d+)$/m.exec((await adminGet(`${primary.adminUrl}/metrics`, { token: password, ...tlsClient })).text)?.[1] ?? 0)
  await waitFor(async () => (await refusals()) >= 3, 10_000, () => 'the link to try again')
  const upstream = (await (await adminGet(`${stranger.adminUrl}/stats`, { token: wrongPassword, ...tlsClient })).text)
  t.match(JSON.parse(upstream).replication.upstream, { state: 'connecting' })
  for (const shard of [primary, replica, stranger]) {
    for (const secret of [password, wrongPassword, 'replication-test-ordinary-password']) t.notOk(shard.output().includes(secret), 'no password in the log')
  }
})

t.test('a replica with TLS but no CA to verify its primary is a config error at start', async (t) => {
  const noCa = files.write('no-ca.yaml', shardYaml(password, `tls: { cert: ${files.certFile}, key: ${files.keyFile} }`))
  const started = await run(process.execPath, [CLI, 'shard', '--port', '0', '--admin-port', '0', '--replicaof', `127.0.0.1:${primaryPort}`, '--config', noCa])
  t.not(started.code, 0)
  t.match(started.stderr, /replication links need a CA to verify their peers/)
})
