// Token rotation through a watched file, on a router process: a token added to the file works and a
// token removed from it is refused within 2 s, with no restart or reload; requests in flight when it
// changes (authenticated as they began) finish; requests sent all along get an answer or a 401, never a failure.
import t from 'tap'
import { renameSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { join } from 'node:path'
import { waitFor } from '../helpers/processes.ts'
import { respClient, send, startTenantRouter } from '../helpers/tenant-router.ts'

const ROTATION_DEADLINE_MS = 2000

const cluster = await startTenantRouter(t, {
  shards: 1,
  files: { 'alice.tokens': 'old-token\n' },
  tenants: (dir) => `  - { name: alice, tokens: [{ file: ${join(dir, 'alice.tokens')} }], permissions: [read, write], namespace: alice }`,
})
const { router } = cluster
const tokenFile = join(cluster.dir, 'alice.tokens')
// Written whole, then renamed over the file: what a mounted Secret's update looks like to a reader.
const publishTokens = (text: string) => {
  writeFileSync(`${tokenFile}.next`, text)
  renameSync(`${tokenFile}.next`, tokenFile)
}

/** A POST whose headers (and token) go now and whose body goes when finish() is called. */
function startSlowWrite(token: string, key: string) {
  const body = JSON.stringify({ value: 'written in flight' })
  const url = new URL(router.url)
  let resolveAnswer: (answer: { status: number; body: string }) => void
  const answer = new Promise<{ status: number; body: string }>((resolve) => (resolveAnswer = resolve))
  const request = http.request({ host: url.hostname, port: url.port, method: 'POST', path: `/${key}`, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (response) => {
    let text = ''
    response.on('data', (chunk) => (text += chunk))
    response.on('end', () => resolveAnswer({ status: response.statusCode!, body: text }))
  })
  request.flushHeaders()
  request.write(body.slice(0, 5))
  return { answer, finish: () => request.end(body.slice(5)) }
}

t.test('a token is rotated in, then the old one out, through the file', async (t) => {
  t.equal((await send(router.url, 'GET', '/k', 'old-token')).status, 404)
  t.equal((await send(router.url, 'GET', '/k', 'new-token')).status, 401)
  const oldSession = respClient(t, cluster.respPort, { token: 'old-token' })
  t.equal(await oldSession.set('from-resp', 'v'), 'OK')

  // Load all along: with the old token, every answer is a 404 or (once it is removed) a 401.
  let loading = true
  const statuses = new Set<number>()
  const load = (async () => {
    while (loading) statuses.add((await send(router.url, 'GET', '/k', 'old-token')).status)
  })()

  writeFileSync(tokenFile, 'old-token\nnew-token\n')
  await waitFor(async () => (await send(router.url, 'GET', '/k', 'new-token')).status === 404, ROTATION_DEADLINE_MS, () => 'the new token works')
  t.equal((await send(router.url, 'GET', '/k', 'old-token')).status, 404, 'both work while both are in the file')

  const inFlight = startSlowWrite('old-token', 'in-flight')
  // Let the request's headers reach the router (it authenticates them) before the token goes.
  await waitFor(async () => (await send(router.url, 'GET', '/k', 'old-token')).status === 404, 1000)
  const removedAt = performance.now()
  publishTokens('new-token\n')
  await waitFor(async () => (await send(router.url, 'GET', '/k', 'old-token')).status === 401, ROTATION_DEADLINE_MS, () => 'the old token is refused')
  t.ok(performance.now() - removedAt <= ROTATION_DEADLINE_MS, `old token refused ${(performance.now() - removedAt).toFixed(0)} ms after the file changed`)
  inFlight.finish()
  t.same(await inFlight.answer, { status: 200, body: '{"stored":true}' }, 'the request in flight with the old token finished')
  t.same((await send(router.url, 'GET', '/in-flight', 'new-token')).body, { value: 'written in flight' })

  loading = false
  await load
  t.same([...statuses].sort(), [401, 404], 'requests during the rotation were answered or refused, none failed')
  t.equal((await send(router.url, 'GET', '/k', 'new-token')).status, 404)

  // RESP: a connection keeps the tenant it authenticated as (as Redis keeps a user's connections
  // when its password changes); a new AUTH with the old token is refused.
  t.equal(await oldSession.get('from-resp'), 'v')
  await t.rejects(oldSession.call('AUTH', 'old-token'), { message: /^WRONGPASS/ })
  t.equal(await oldSession.call('AUTH', 'new-token'), 'OK')
  t.notOk(router.output().includes('old-token') || router.output().includes('new-token'), 'tokens never logged')
})
