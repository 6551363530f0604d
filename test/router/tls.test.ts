// The router's ports over TLS with certificates made here: curl and undici that trust the CA get
// through (and redis-cli to the RESP port); without the CA, with another CA, against an expired
// certificate or with TLS 1.1 the handshake fails, and the router counts it by port.
import t, { type Test } from 'tap'
import tls from 'node:tls'
import { once } from 'node:events'
import { Agent, request } from 'undici'
import { createCertificateAuthority } from '../../cli/local-tls.ts'
import { makeTestTls } from '../helpers/certificates.ts'
import { run, startRouterProcess, startShardProcess, waitFor, type RouterProcess } from '../helpers/processes.ts'

const DAY_MS = 86_400_000
const files = await makeTestTls(t)
const shard = await startShardProcess(t, ['--name', 's0'])
const routerConfig = (name: string, certFile: string, keyFile: string) => files.write(`${name}.yaml`, `listen:
  data: 127.0.0.1:0
  admin: 127.0.0.1:0
  resp: 127.0.0.1:0
tls: { cert: ${certFile}, key: ${keyFile} }
pools:
  main:
    shards:
      - name: s0
        primary: 127.0.0.1:${shard.port}
`)
const router = await startRouterProcess(t, routerConfig('router', files.certFile, files.keyFile))
const respPort = Number(/ resp [\d.]+:(\d+)/.exec(router.output())![1])

const trusting = new Agent({ connect: { ca: files.ca.cert } })
// Only to read the metrics of a router whose certificate has expired.
const unverifying = new Agent({ connect: { rejectUnauthorized: false } })
t.teardown(() => Promise.all([trusting.close(), unverifying.close()]))

async function handshakeFailures(target: RouterProcess, port: 'data' | 'admin' | 'resp', reader: Agent): Promise<number> {
  const response = await request(`${target.adminUrl}/metrics`, { dispatcher: reader })
  const text = await response.body.text()
  const line = new RegExp(`^shardline_router_tls_handshake_failures_total\\{port="${port}"\\} (\\d+)$`, 'm').exec(text)
  return line ? Number(line[1]) : 0
}

/** Runs attempt (expected to fail its handshake) and waits for the router to count it. */
async function countsAFailure(t: Test, target: RouterProcess, port: 'data' | 'admin' | 'resp', attempt: () => Promise<unknown>, reader = trusting) {
  const before = await handshakeFailures(target, port, reader)
  await attempt()
  const after = await waitFor(async () => {
    const now = await handshakeFailures(target, port, reader)
    return now > before && now
  }, 5000, () => `shardline_router_tls_handshake_failures_total{port="${port}"} stayed at ${before}`)
  // redis-cli tries its connection more than once: at least the one failure is counted.
  t.ok(after > before, `the failed handshake counted on the ${port} port (${before} -> ${after})`)
}

t.test('the ready line gives https:// addresses', async (t) => {
  t.match(router.url, /^https:\/\/127\.0\.0\.1:\d+$/)
  t.match(router.adminUrl, /^https:\/\/127\.0\.0\.1:\d+$/)
})

t.test('curl with --cacert stores and reads a key over HTTPS', async (t) => {
  const stored = await run('curl', ['-sS', '--cacert', files.caFile, '-X', 'POST', '-H', 'content-type: application/json', '-d', '{"value":"over tls"}', `${router.url}/greeting`])
  t.equal(stored.code, 0, stored.stderr)
  t.same(JSON.parse(stored.stdout), { stored: true })
  const read = await run('curl', ['-sS', '--cacert', files.caFile, `${router.url}/greeting`])
  t.same(JSON.parse(read.stdout), { value: 'over tls' })
  const version = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{ssl_verify_result}', '--cacert', files.caFile, `${router.adminUrl}/healthz`])
  t.equal(version.stdout, '0', 'the admin port serves the same verified certificate')
})

t.test('undici with the CA reads the key, and keeps its connection for the next request', async (t) => {
  const first = await request(`${router.url}/greeting`, { dispatcher: trusting })
  t.same(await first.body.json(), { value: 'over tls' })
  const second = await request(`${router.url}/missing`, { dispatcher: trusting })
  t.equal(second.statusCode, 404)
  await second.body.dump()
})

t.test('redis-cli --tls --cacert talks to the RESP port', async (t) => {
  const reply = await run('redis-cli', ['--tls', '--cacert', files.caFile, '-h', '127.0.0.1', '-p', String(respPort), 'GET', 'greeting'])
  t.equal(reply.code, 0, reply.stderr)
  t.equal(reply.stdout.trim(), 'over tls')
})

t.test('a client that does not trust the CA fails its handshake, and the router counts it', async (t) => {
  await countsAFailure(t, router, 'data', async () => {
    const curl = await run('curl', ['-sS', `${router.url}/greeting`])
    t.equal(curl.code, 60, `curl without --cacert refuses the certificate: ${curl.stderr.trim()}`)
  })
  await countsAFailure(t, router, 'data', async () => {
    const untrusting = new Agent()
    t.teardown(() => untrusting.close())
    await t.rejects(request(`${router.url}/greeting`, { dispatcher: untrusting }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'undici without the CA')
  })
  const otherCa = await createCertificateAuthority('another CA')
  await countsAFailure(t, router, 'admin', async () => {
    const wrongCa = new Agent({ connect: { ca: otherCa.cert } })
    t.teardown(() => wrongCa.close())
    await t.rejects(request(`${router.adminUrl}/healthz`, { dispatcher: wrongCa }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'undici with another CA')
  })
  await countsAFailure(t, router, 'resp', async () => {
    const reply = await run('redis-cli', ['--tls', '--cacert', files.write('other-ca.pem', otherCa.cert), '-h', '127.0.0.1', '-p', String(respPort), 'PING'])
    t.not(reply.stdout.trim(), 'PONG', 'redis-cli with another CA gets no reply')
  })
})

t.test('TLS 1.1 is refused', async (t) => {
  await countsAFailure(t, router, 'data', async () => {
    // OpenSSL's default security level forbids TLS 1.1 in the client too: level 0 lets it ask.
    const socket = tls.connect({ host: '127.0.0.1', port: Number(new URL(router.url).port), ca: files.ca.cert, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })
    const [error] = (await once(socket, 'error')) as [Error & { code?: string }]
    t.match(error.code, /ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/, error.message)
  })
})

t.test('an expired certificate is refused by clients that trust its CA', async (t) => {
  const expired = await files.issue('expired', { notBefore: new Date(Date.now() - 3 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) })
  const stale = await startRouterProcess(t, routerConfig('expired-router', expired.certFile, expired.keyFile))
  await countsAFailure(t, stale, 'data', async () => {
    const curl = await run('curl', ['-sS', '--cacert', files.caFile, `${stale.url}/greeting`])
    t.equal(curl.code, 60, curl.stderr.trim())
    t.match(curl.stderr, /expired/)
  }, unverifying)
})
