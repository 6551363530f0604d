// A shard serving RESP and its admin HTTP over TLS with certificates made here: redis-cli --tls and
// ioredis that trust the CA get through, without the CA the handshake fails (and is counted), and
// certificate files replaced in place serve new connections without a restart.
import t from 'tap'
import { createCertificateAuthority, issueCertificate } from '../../cli/local-tls.ts'
import { makeTestTls } from '../helpers/certificates.ts'
import { run, waitFor } from '../helpers/processes.ts'
import { adminGet, shardClient, startSecureShard } from '../helpers/secure-shard.ts'

const files = await makeTestTls(t)
const password = 'tls-test-internal-password'
const config = files.write('shard.yaml', `tls: { cert: ${files.certFile}, key: ${files.keyFile} }
auth:
  internalPasswords: ['${password}']
`)
const shard = await startSecureShard(t, ['--name', 'sealed', '--config', config])
const cli = (...args: string[]) => run('redis-cli', ['-p', String(shard.port), '--tls', '-a', password, '--no-auth-warning', ...args])

async function handshakeFailures(): Promise<number> {
  const { text } = await adminGet(`${shard.adminUrl}/metrics`, { token: password, ca: files.ca.cert })
  return Number(/^shardline_shard_tls_handshake_failures_total\{port="resp",shard="sealed"\} (\d+)$/m.exec(text)?.[1] ?? 0)
}

t.test('the ready line shows the admin URL as https', async (t) => {
  t.match(shard.output(), /shardline shard sealed ready: resp 127\.0\.0\.1:\d+ admin https:\/\/127\.0\.0\.1:\d+/)
})

t.test('redis-cli --tls --cacert works; without the CA the handshake fails and is counted', async (t) => {
  t.equal((await cli('--cacert', files.caFile, 'set', 'k', 'v')).stdout.trim(), 'OK')
  t.equal((await cli('--cacert', files.caFile, 'get', 'k')).stdout.trim(), 'v')
  const before = await handshakeFailures()
  const untrusting = await cli('get', 'k')
  t.notMatch(untrusting.stdout, /^v$/m, 'no reply without the CA')
  t.match(untrusting.stderr, /SSL|certificate|verify/i)
  await waitFor(async () => (await handshakeFailures()) > before, 5000, () => 'the failed handshake to be counted')
  const plain = await run('redis-cli', ['-p', String(shard.port), 'ping'])
  t.notMatch(plain.stdout, /PONG/, 'plain RESP to a TLS port gets nothing')
})

t.test('ioredis over TLS with a password', async (t) => {
  const redis = shardClient(t, shard.port, { password, ca: files.ca.cert })
  t.equal(await redis.set('a', '1'), 'OK')
  t.equal(await redis.get('a'), '1')
})

t.test('the admin HTTP is HTTPS with the same certificate', async (t) => {
  t.equal((await adminGet(`${shard.adminUrl}/healthz`, { ca: files.ca.cert })).status, 200)
  t.equal((await adminGet(`${shard.adminUrl}/stats`, { ca: files.ca.cert })).status, 401)
  t.equal((await adminGet(`${shard.adminUrl}/stats`, { ca: files.ca.cert, token: password })).status, 200)
  await t.rejects(adminGet(`${shard.adminUrl}/healthz`), /certificate/i, 'not without the CA')
})

t.test('replaced certificate files serve new connections; open ones stay', async (t) => {
  const open = shardClient(t, shard.port, { password, ca: files.ca.cert })
  t.equal(await open.ping(), 'PONG')
  const otherCa = await createCertificateAuthority('another test CA')
  const renewed = await issueCertificate(otherCa)
  const otherCaFile = files.write('other-ca.pem', otherCa.cert)
  files.write('server-key.pem', renewed.key)
  files.write('server.pem', renewed.cert)
  await waitFor(async () => (await cli('--cacert', otherCaFile, 'ping')).stdout.trim() === 'PONG', 5000, () => 'the new certificate to serve')
  t.not((await cli('--cacert', files.caFile, 'ping')).stdout.trim(), 'PONG', 'the old CA no longer verifies new connections')
  t.equal(await open.get('a'), '1', 'a connection made before the change keeps working')
})
