// Per-tenant rate limits on a router process: a tenant sending well past its rate gets about
// burst + rate x time requests through, within one bucket, and 429s (counted) for the rest; a batch
// costs its op count; a shadow-mode limit refuses nothing and counts what it would have refused.
import t from 'tap'
import { metricValue, send, startTenantRouter } from '../helpers/tenant-router.ts'

const RATE = 40
const BURST = 20
const cluster = await startTenantRouter(t, {
  shards: 1,
  tenants: `  - { name: enforced, tokens: [enforced-token], permissions: [read], namespace: e, rateLimit: { rate: ${RATE}, burst: ${BURST} } }
  - { name: batched, tokens: [batched-token], permissions: [read], namespace: b, rateLimit: { rate: ${RATE}, burst: ${BURST} } }
  - { name: shadowed, tokens: [shadowed-token], permissions: [read], namespace: s, rateLimit: { rate: ${RATE}, burst: ${BURST}, mode: shadow } }`,
})
const { router } = cluster

/** Sends request() from a few concurrent senders for durationMs; the statuses, and the seconds from the first send to the last answer. */
async function hammer(request: () => ReturnType<typeof send>, durationMs: number): Promise<{ statuses: Map<number, number>; seconds: number; retryAfter: Set<string> }> {
  const statuses = new Map<number, number>()
  const retryAfter = new Set<string>()
  const started = performance.now()
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (performance.now() - started < durationMs) {
      const answer = await request()
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
      if (answer.status === 429) retryAfter.add(String(answer.headers['retry-after']))
    }
  }))
  return { statuses, seconds: (performance.now() - started) / 1000, retryAfter }
}

const expectedWithin = (admitted: number, seconds: number) => Math.abs(admitted - (BURST + RATE * seconds)) <= BURST

t.test('enforce: burst + rate x time let in (within one bucket), the rest 429 with Retry-After, each counted', async (t) => {
  const { statuses, seconds, retryAfter } = await hammer(() => send(router.url, 'GET', '/missing', 'enforced-token'), 2000)
  const admitted = statuses.get(404) ?? 0
  const refused = statuses.get(429) ?? 0
  t.same([...statuses.keys()].sort(), [404, 429], 'only answers and refusals')
  t.ok(refused > admitted, `sent well past the rate (${admitted} in, ${refused} refused)`)
  t.ok(expectedWithin(admitted, seconds), `${admitted} let in over ${seconds.toFixed(2)} s; expected ${BURST} + ${RATE} x ${seconds.toFixed(2)} = ${(BURST + RATE * seconds).toFixed(1)} within ${BURST}`)
  t.same([...retryAfter], ['1'], 'Retry-After: whole seconds, at least 1')
  t.equal(await metricValue(router.adminUrl, 'shardline_router_rate_limited_total{tenant="enforced",mode="enforce"}'), refused, 'every 429 counted')
  t.equal(await metricValue(router.adminUrl, 'shardline_router_tenant_requests_total{tenant="enforced"}'), admitted, 'every request let in counted')
})

t.test('a batch costs its op count', async (t) => {
  const ops = Array.from({ length: 5 }, (_, i) => ({ op: 'get', key: `k${i}` }))
  const { statuses, seconds } = await hammer(() => send(router.url, 'POST', '/-/batch', 'batched-token', { ops }), 2000)
  const opsAdmitted = (statuses.get(200) ?? 0) * ops.length
  t.ok((statuses.get(429) ?? 0) > 0)
  t.ok(expectedWithin(opsAdmitted, seconds), `${opsAdmitted} ops let in over ${seconds.toFixed(2)} s; expected ${(BURST + RATE * seconds).toFixed(1)} within ${BURST}`)
})

t.test('shadow: nothing refused; what enforce would refuse is counted', async (t) => {
  const { statuses, seconds } = await hammer(() => send(router.url, 'GET', '/missing', 'shadowed-token'), 2000)
  const total = statuses.get(404) ?? 0
  t.same([...statuses.keys()], [404], 'every request answered')
  const counted = await metricValue(router.adminUrl, 'shardline_router_rate_limited_total{tenant="shadowed",mode="shadow"}')
  t.ok(counted > 0)
  t.ok(expectedWithin(total - counted, seconds), `${total - counted} of ${total} within the limit over ${seconds.toFixed(2)} s; expected ${(BURST + RATE * seconds).toFixed(1)} within ${BURST}`)
  t.equal(await metricValue(router.adminUrl, 'shardline_router_tenant_requests_total{tenant="shadowed"}'), total, 'all let in')
})
