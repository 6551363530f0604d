// The admin port with tenants: every route but the health probes needs an admin token (401 without
// one or with an unknown one, 403 with another tenant's), /metrics as the config says; the shard
// admins are reached over HTTPS with the router's own credential; /admin/config shows no secret;
// hot keys and /admin/route per tenant.
import t from 'tap'
import { once } from 'node:events'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { createCertificateAuthority, issueCertificate } from '../../cli/local-tls.ts'
import { DEFAULT_CONNECTIONS } from '../../common/http-server.ts'
import { createLogger } from '../../common/logger.ts'
import { createRouterAdmin } from '../../router/admin.ts'
import { parseRouterConfig } from '../../router/config.ts'
import { RouterMetrics } from '../../router/metrics.ts'
import { RouteTree } from '../../router/route-tree.ts'
import { makeTestTls } from '../helpers/certificates.ts'
import { freePort } from '../helpers/processes.ts'

const ALICE = 'alice-secret-token-4c1d'
const BOB = 'bob-secret-token-93ea'
const OPS = 'ops-secret-token-e07b'
const SHARD_PASSWORD = 'shard-secret-password-2b8f'
process.env.SHARDLINE_TEST_OPS_TOKEN = OPS

const files = await makeTestTls(t)

// Stand-in shard admins over HTTPS that record what reaches them: one with a certificate our CA signed, one another CA's.
const shardRequests: Array<{ method: string; url: string; authorization: string | undefined }> = []
async function shardAdminWith(certificate: { cert: string; key: string }): Promise<number> {
  const server = https.createServer(certificate, (request, response) => {
    shardRequests.push({ method: request.method!, url: request.url!, authorization: request.headers.authorization })
    const body = request.url === '/stats' ? { replication: { role: 'primary', offset: 7 } } : { path: request.url }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return (server.address() as AddressInfo).port
}
const shardAdminPort = await shardAdminWith(await issueCertificate(files.ca, { hosts: ['127.0.0.1'] }))
const strangerAdminPort = await shardAdminWith(await issueCertificate(await createCertificateAuthority('another CA'), { hosts: ['127.0.0.1'] }))

// Nothing listens on the shard's RESP port: the admin port answers without one.
const deadPort = await freePort()
const configText = (metrics: 'open' | 'token', adminPort: number) => `listen: { data: 127.0.0.1:0, admin: 127.0.0.1:0 }
pools:
  main:
    shards:
      - { name: s0, primary: { address: "127.0.0.1:${deadPort}", admin: "127.0.0.1:${adminPort}" } }
health: { heartbeatMs: 60000 }
tenants:
  - { name: alice, tokens: [${ALICE}], permissions: [read, write], namespace: alice }
  - { name: bob, tokens: [${BOB}], permissions: [read, write], namespace: bob, rateLimit: { rate: 100 } }
  - { name: ops, tokens: [{ env: SHARDLINE_TEST_OPS_TOKEN }], permissions: [read, admin] }
admin: { metrics: ${metrics} }
shardAccess: { password: ${SHARD_PASSWORD}, tls: { ca: ${files.caFile} } }
`
const log = createLogger('admin-auth-test', 'silent')
const metrics = new RouterMetrics(() => [], () => 1)
const treeOf = (metricsAccess: 'open' | 'token', adminPort = shardAdminPort): RouteTree => {
  const built = new RouteTree(parseRouterConfig(configText(metricsAccess, adminPort), 'router.yaml'), 1, log, () => {}, metrics)
  t.teardown(() => built.close(0))
  return built
}
const openMetricsTree = treeOf('open')
let tree = openMetricsTree
const admin = await createRouterAdmin({
  log,
  metrics,
  connections: DEFAULT_CONNECTIONS,
  tree: () => tree,
  started: () => true,
  reloads: () => ({ generation: 1, lastError: null, loadedAt: new Date().toISOString() }),
})
await admin.listen({ host: '127.0.0.1', port: 0 })
t.teardown(() => admin.close())

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const request = (url: string, headers: Record<string, string> = {}, method: 'GET' | 'DELETE' = 'GET') => admin.inject({ method, url, headers })

const ADMIN_ROUTES: Array<[string, 'GET' | 'DELETE']> = [
  ['/admin/config', 'GET'],
  ['/admin/topology', 'GET'],
  ['/admin/route/k', 'GET'],
  ['/admin/hotkeys', 'GET'],
  ['/admin/shards', 'GET'],
  ['/admin/shards/s0/stats', 'GET'],
  ['/admin/shards/s0/keys/k', 'DELETE'],
  ['/no/such/route', 'GET'],
]

t.test('every admin route: 401 without a token or with an unknown one, 403 with a tenant that is not admin, answered with an admin token', async (t) => {
  for (const [url, method] of ADMIN_ROUTES) {
    for (const headers of [{}, bearer('not-a-token'), { authorization: OPS }, { authorization: `Basic ${OPS}` }]) {
      const response = await request(url, headers, method)
      t.equal(response.statusCode, 401, `${method} ${url} with ${JSON.stringify(headers)}`)
      t.equal(response.headers['www-authenticate'], 'Bearer realm="shardline"')
      t.equal(response.json().code, 'unauthorized')
    }
    const forbidden = await request(url, bearer(ALICE), method)
    t.equal(forbidden.statusCode, 403, `${method} ${url} as alice`)
    t.same(forbidden.json(), { error: 'tenant alice has no admin permission', code: 'forbidden' })
  }
  t.same(shardRequests, [], 'no refused request reached a shard')
  for (const [url, method] of ADMIN_ROUTES) {
    const response = await request(url, bearer(OPS), method)
    t.equal(response.statusCode, url === '/no/such/route' ? 404 : 200, `${method} ${url} as ops`)
  }
  t.match(await metrics.registry.getSingleMetricAsString('shardline_router_auth_failures_total'), /reason="missing_token"} [1-9]/)
})

t.test('the health probes answer without a token; /metrics is open or needs an admin token, as the config says', async (t) => {
  t.same((await request('/healthz')).json(), { status: 'ok' })
  const ready = await request('/readyz')
  t.equal(ready.json().code, 'not_ready', 'not refused for its credentials: the shard is down')
  t.equal((await request('/metrics')).statusCode, 200, 'admin.metrics: open')
  tree = treeOf('token')
  t.teardown(() => {
    tree = openMetricsTree
  })
  t.equal((await request('/metrics')).statusCode, 401, 'admin.metrics: token')
  t.equal((await request('/metrics', bearer(BOB))).statusCode, 403)
  const scraped = await request('/metrics', bearer(OPS))
  t.equal(scraped.statusCode, 200)
  t.match(scraped.body, /shardline_router_auth_failures_total\{reason="forbidden"\} [1-9]/)
  t.equal((await request('/healthz')).statusCode, 200)
})

t.test('shard admins are reached over HTTPS (verified by shardAccess.tls.ca) with the shard password, never the caller\'s token', async (t) => {
  shardRequests.length = 0
  const forwarded = await request('/admin/shards/s0/keys/some%20key', bearer(OPS), 'DELETE')
  t.same(forwarded.json(), { path: '/keys/some%20key' })
  const shards = await request('/admin/shards', bearer(OPS))
  t.same(shards.json().destinations[0].replication, { role: 'primary', offset: 7 })
  t.same(shardRequests, [
    { method: 'DELETE', url: '/keys/some%20key', authorization: `Bearer ${SHARD_PASSWORD}` },
    { method: 'GET', url: '/stats', authorization: `Bearer ${SHARD_PASSWORD}` },
  ])

  tree = treeOf('open', strangerAdminPort)
  t.teardown(() => {
    tree = openMetricsTree
  })
  const unverified = await request('/admin/shards/s0/stats', bearer(OPS))
  t.match(unverified.json(), { code: 'upstream_error', error: /certificate/ }, 'a shard whose certificate the CA did not sign is not spoken to')
  t.equal(unverified.statusCode, 502)
  t.match((await request('/admin/shards', bearer(OPS))).json().destinations[0].replication, { error: /could not be read/ })
  t.equal(shardRequests.length, 2, 'nothing reached it')
})

t.test('/admin/config shows who the tenants are and which files hold certificates, and no secret', async (t) => {
  const response = await request('/admin/config', bearer(OPS))
  for (const secret of [ALICE, BOB, OPS, SHARD_PASSWORD, 'SHARDLINE_TEST_OPS_TOKEN']) t.notMatch(response.body, secret, 'a secret or where it is kept')
  const body = response.json()
  t.same(body.tenants, [
    { name: 'alice', permissions: ['read', 'write'], namespace: 'alice', pool: null, rateLimit: null },
    { name: 'bob', permissions: ['read', 'write'], namespace: 'bob', pool: null, rateLimit: { rate: 100, burst: 100, mode: 'enforce' } },
    { name: 'ops', permissions: ['read', 'admin'], namespace: null, pool: null, rateLimit: null },
  ])
  t.same(body.shardAccess, { password: '(set)', tls: { ca: files.caFile } })
  t.same(body.admin, { metrics: 'open' })
})

t.test('hot keys by tenant, each shown as its tenant sends it; /admin/route explains a tenant\'s key', async (t) => {
  const tenant = (name: string) => tree.access.byName(name)!
  const gets = (key: string, name: string | undefined, count: number) => Array.from({ length: count }, () => tree.route({ kind: 'get', key, tenant: name === undefined ? undefined : tenant(name) }).catch(() => null))
  await Promise.all([...gets('hot', 'alice', 30), ...gets('hot', 'bob', 20), ...gets('bob:raw', 'ops', 10)])
  const hotKeys = async (query = '') => {
    const response = await request(`/admin/hotkeys${query}`, bearer(OPS))
    return response.statusCode === 200 ? (response.json().pools.main as Array<{ key: string; tenant: string | null }>).map(({ key, tenant }) => ({ key, tenant })) : response.json()
  }
  t.same(await hotKeys(), [{ key: 'hot', tenant: 'alice' }, { key: 'hot', tenant: 'bob' }, { key: 'raw', tenant: 'bob' }], 'an admin\'s key in bob\'s namespace is bob\'s')
  t.same(await hotKeys('?tenant=alice'), [{ key: 'hot', tenant: 'alice' }])
  t.same(await hotKeys('?tenant=bob'), [{ key: 'hot', tenant: 'bob' }, { key: 'raw', tenant: 'bob' }])
  await Promise.all(gets('plain', 'ops', 5))
  t.same(await hotKeys('?tenant=ops'), [{ key: 'plain', tenant: null }], 'a tenant without a namespace: the keys outside every namespace')
  t.same(await hotKeys('?tenant=carol'), { error: 'no tenant named "carol"', code: 'unknown_tenant' })

  const route = (await request('/admin/route/k?tenant=bob', bearer(OPS))).json()
  t.match(route, { key: 'k', tenant: 'bob', steps: [{ route: 'tenant', decision: 'bob' }] })
  t.match((await request('/admin/route/k', bearer(OPS))).json(), { tenant: null })
})
