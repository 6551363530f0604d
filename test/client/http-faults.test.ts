// HTTP mode when things fail: retries of idempotent calls on 503, 504 and lost connections and never of
// increments (a scripted router counts the requests), a caller aborting inside a batch, timeouts and
// aborts against a router whose shard never answers, and a router whose shard is down and then back.
import t, { type Test } from 'tap'
import type http from 'node:http'
import { createClient } from '../../client/index.ts'
import { startShardProcess, waitFor } from '../helpers/processes.ts'
import { requestsByOp, scriptedRouter, sendJson, silentServer, startRouterOverPorts, type ScriptedRequest } from '../helpers/client-router.ts'

const UNAVAILABLE = { error: 'shard s0 is unavailable', code: 'shard_unavailable' }

/** A scripted router answering requests in turn from a list: a status and body, or 'drop' (the connection is destroyed). */
async function routerAnswering(t: Test, answers: Array<[number, unknown] | 'drop'>) {
  return scriptedRouter(t, (_, response, index) => {
    const answer = answers[Math.min(index, answers.length - 1)]
    if (answer === 'drop') response.socket!.destroy()
    else sendJson(response, answer[0], answer[1])
  })
}

t.test('an idempotent call is tried again on 503, 504 and a lost connection, up to retries times', async (t) => {
  const flaky = await routerAnswering(t, [[503, UNAVAILABLE], [504, { error: 'slow', code: 'shard_timeout' }], [200, { value: 'at last' }]])
  const client = createClient({ url: flaky.url })
  t.teardown(() => client.close())
  t.equal(await client.get('k'), 'at last')
  t.equal(flaky.requests.length, 3, 'two retries (the default)')

  const dropping = await routerAnswering(t, ['drop', [200, { deleted: true }]])
  const dropClient = createClient({ url: dropping.url })
  t.teardown(() => dropClient.close())
  t.equal(await dropClient.del('k'), true)
  t.equal(dropping.requests.length, 2, 'a dropped connection: tried again')

  const down = await routerAnswering(t, [[503, UNAVAILABLE]])
  const downClient = createClient({ url: down.url, retries: 4 })
  t.teardown(() => downClient.close())
  await t.rejects(downClient.counter('c'), { code: 'shard_unavailable', status: 503, message: UNAVAILABLE.error })
  t.equal(down.requests.length, 5, 'retries: 4 is five tries')
  const noRetries = createClient({ url: down.url, retries: 0 })
  t.teardown(() => noRetries.close())
  await t.rejects(noRetries.set('k', 'v'), { code: 'shard_unavailable' })
  t.equal(down.requests.length, 6, 'retries: 0 is one try')

  const refusing = await routerAnswering(t, [[400, { error: 'bad', code: 'invalid_request' }]])
  const refusedClient = createClient({ url: refusing.url })
  t.teardown(() => refusedClient.close())
  await t.rejects(refusedClient.get('k'), { code: 'invalid_request', status: 400 })
  t.equal(refusing.requests.length, 1, 'a 4xx is never tried again')
})

t.test('an increment is never tried again: 503, outcome_unknown, or a connection lost after it was sent', async (t) => {
  const cases: Array<[[number, unknown] | 'drop', string]> = [[[503, UNAVAILABLE], 'shard_unavailable'], [[503, { error: 'maybe', code: 'outcome_unknown' }], 'outcome_unknown'], ['drop', 'outcome_unknown']]
  for (const [answer, code] of cases) {
    const scripted = await routerAnswering(t, [answer, [200, { value: 1 }]])
    const client = createClient({ url: scripted.url, retries: 5 })
    await t.rejects(client.incr('c', 3), { code }, `${JSON.stringify(answer)}: ${code}`)
    t.same(scripted.requests.map((request) => [request.method, request.url, request.body]), [['POST', '/c/incr', '{"by":3}']], 'sent once')
    await client.close()
  }
})

t.test('a batch: an op the router failed alone is tried again alone; a caller who aborts rejects alone', async (t) => {
  const held: Array<{ request: ScriptedRequest; response: http.ServerResponse }> = []
  const scripted = await scriptedRouter(t, (request, response) => {
    if (request.url === '/-/batch') return void held.push({ request, response })
    sendJson(response, 200, { value: `alone ${request.url}` })
  })
  const client = createClient({ url: scripted.url, timeoutMs: 5000 })
  t.teardown(() => client.close())
  const quitting = new AbortController()
  const a = client.get('a')
  const gone = client.get('gone', { signal: quitting.signal })
  const b = client.get('b')
  await waitFor(() => held.length === 1, 5000)
  t.same(JSON.parse(held[0].request.body), { ops: [{ op: 'get', key: 'a' }, { op: 'get', key: 'gone' }, { op: 'get', key: 'b' }] }, 'one batch of three')
  quitting.abort()
  await t.rejects(gone, { code: 'aborted' }, 'the aborted caller rejects at once, its batch still out')
  sendJson(held[0].response, 200, { results: [{ value: 'a' }, { value: 'gone' }, { error: 'shard s1 is unavailable', code: 'shard_unavailable' }] })
  t.equal(await a, 'a')
  t.equal(await b, 'alone /b', 'the op failed with shard_unavailable was tried again, alone')
  t.same(scripted.requests.map((request) => `${request.method} ${request.url}`), ['POST /-/batch', 'GET /b'])

  // A batch answered 503 whole: every op is tried again (each after its own jittered wait, so alone or together).
  const unavailable = await scriptedRouter(t, (request, response, index) => {
    if (index === 0) return sendJson(response, 503, { error: 'overloaded', code: 'overloaded' })
    if (request.url === '/-/batch') return sendJson(response, 200, { results: [{ stored: true }, { deleted: false }] })
    sendJson(response, 200, request.method === 'POST' ? { stored: true } : { deleted: false })
  })
  const batchClient = createClient({ url: unavailable.url })
  t.teardown(() => batchClient.close())
  t.same(await Promise.all([batchClient.set('x', 1), batchClient.del('y')]), [true, false])
  t.equal(unavailable.requests[0].url, '/-/batch')
  t.ok(unavailable.requests.length >= 2)
})

t.test('against a router whose shard never answers: the call times out, or aborts mid-call', async (t) => {
  // The router would wait 10 s for the shard and not check its health for a minute: the client's deadline comes first.
  const router = await startRouterOverPorts(t, [await silentServer(t)], 'health: { heartbeatMs: 60000 }\nconnections: { timeoutMs: 10000 }\n')
  const client = createClient({ url: router.url, timeoutMs: 300 })
  t.teardown(() => client.close())
  const started = Date.now()
  await t.rejects(client.get('k'), { code: 'timeout', message: /300 ms/ })
  t.ok(Date.now() - started < 3000, 'within its timeout, give or take')
  await t.rejects(Promise.all([client.get('a'), client.get('b')]), { code: 'timeout' }, 'a batch times out too')
  await t.rejects(client.incr('c', 1, { timeoutMs: 200 }), { code: 'timeout' }, 'a per-call timeout')
  const controller = new AbortController()
  // The abort comes 100 ms into a call that would otherwise wait out its 10 s timeout.
  setTimeout(() => controller.abort(), 100)
  const abortedAt = Date.now()
  await t.rejects(client.set('k', 'v', { signal: controller.signal, timeoutMs: 10_000 }), { code: 'aborted' })
  t.ok(Date.now() - abortedAt < 3000, 'at the abort, not at the timeout')
})

t.test('a router whose shard is down answers 503 or 504; the call is tried until the shard is back', async (t) => {
  const shard = await startShardProcess(t, ['--name', 's0'])
  const router = await startRouterOverPorts(t, [shard.port], 'health: { heartbeatMs: 50, probeInitialMs: 20, probeMaxMs: 50 }\nconnections: { connectTimeoutMs: 200, timeoutMs: 300 }\n')
  const client = createClient({ url: router.url, retries: 10, timeoutMs: 30_000 })
  t.teardown(() => client.close())
  t.equal(await client.set('k', 'before'), true)
  // Down: hung (SIGSTOP), so that it is back the moment it resumes, however busy this machine is.
  shard.child.kill('SIGSTOP')
  await waitFor(async () => [503, 504].includes((await fetch(`${router.url}/k`)).status), 10_000, () => 'the router never answered 503 or 504')
  const sets = async () => (await requestsByOp(router)).set ?? 0
  const before = await sets()
  const written = client.set('k', 'written once the shard is back')
  await waitFor(async () => (await sets()) > before, 10_000, () => 'the set never reached the router')
  shard.child.kill('SIGCONT')
  t.equal(await written, true)
  t.ok((await sets()) - before >= 2, `it took ${(await sets()) - before} tries`)
  t.equal(await client.get('k'), 'written once the shard is back')
})
