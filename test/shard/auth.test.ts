// A shard with passwords, driven as users drive Redis: nothing but AUTH, HELLO, PING and QUIT before
// AUTH; redis-cli -a; ordinary clients refused the internal commands; a password file rotated in
// place; the admin HTTP behind a bearer token; and no secret in the log, INFO, CONFIG GET or /stats.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { COMMAND_SPECS } from '../../shard/commands.ts'
import { run, startShardProcess, waitFor } from '../helpers/processes.ts'
import { adminGet, shardClient } from '../helpers/secure-shard.ts'

const dir = mkdtempSync(join(tmpdir(), 'shardline-auth-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const secret = (name: string) => `${name}-${randomBytes(12).toString('hex')}`
const internal = secret('internal')
const firstOrdinary = secret('ordinary')
const secondOrdinary = secret('rotated')
const passwordFile = join(dir, 'passwords')
writeFileSync(passwordFile, `${firstOrdinary}\n`)
const configFile = join(dir, 'shard.yaml')
writeFileSync(configFile, `auth:\n  passwords: [{ file: ${passwordFile} }]\n  internalPasswords: ['${internal}']\n`)
const shard = await startShardProcess(t, ['--name', 'guarded', '--config', configFile])
const secrets = [internal, firstOrdinary, secondOrdinary]
const seen: string[] = []

t.test('before AUTH every command but AUTH, HELLO, PING and QUIT answers -NOAUTH', async (t) => {
  const redis = shardClient(t, shard.port)
  const open = new Set(['auth', 'hello', 'ping', 'quit'])
  for (const spec of COMMAND_SPECS.filter((spec) => !open.has(spec.name))) {
    const args = Array.from({ length: Math.abs(spec.arity) - 1 }, () => 'x')
    await t.rejects(redis.call(spec.name, ...args), /^NOAUTH Authentication required\.$/, spec.name)
  }
  await t.rejects(redis.call('nosuchcommand'), /^NOAUTH/, 'an unknown command too')
  t.equal(await redis.ping(), 'PONG')
  await t.rejects(redis.call('hello', '2'), /^NOAUTH HELLO must be called with the client already authenticated/)
  t.equal(await redis.call('quit'), 'OK')
})

t.test('redis-cli -a runs commands; a wrong password answers WRONGPASS', async (t) => {
  const cli = (password: string, ...args: string[]) => run('redis-cli', ['-p', String(shard.port), '-a', password, '--no-auth-warning', ...args])
  t.equal((await cli(firstOrdinary, 'set', 'k', 'v')).stdout.trim(), 'OK')
  t.equal((await cli(firstOrdinary, 'get', 'k')).stdout.trim(), 'v')
  // redis-cli says the refused AUTH on stderr, then runs the command unauthenticated.
  const refused = await cli(secret('wrong'), 'get', 'k')
  t.match(refused.stderr, /AUTH failed: WRONGPASS invalid username-password pair or user is disabled\./)
  t.match(refused.stdout, /NOAUTH Authentication required\./)
})

t.test('AUTH default takes ordinary passwords, AUTH shardline internal ones, AUTH <password> either', async (t) => {
  const redis = shardClient(t, shard.port)
  await t.rejects(redis.call('auth', 'default', internal), /^WRONGPASS/)
  await t.rejects(redis.call('auth', 'shardline', firstOrdinary), /^WRONGPASS/)
  await t.rejects(redis.call('auth', 'someone', firstOrdinary), /^WRONGPASS/)
  await t.rejects(redis.call('get', 'k'), /^NOAUTH/, 'a refused AUTH grants nothing')
  t.equal(await redis.call('auth', 'default', firstOrdinary), 'OK')
  t.equal(await redis.get('k'), 'v')
  t.equal(await redis.call('auth', 'shardline', internal), 'OK')
  t.equal(await redis.call('sl.digest').then((reply) => (reply as unknown[]).length), 2)
  const hello = (await redis.call('hello', '2', 'auth', 'default', firstOrdinary)) as unknown[]
  t.same(hello.slice(0, 6), ['server', 'redis', 'version', '7.0.0', 'proto', 2])
  await t.rejects(redis.call('hello', '3'), /^NOPROTO/)
  const greeted = shardClient(t, shard.port)
  t.equal(((await greeted.call('hello', '2', 'auth', 'default', firstOrdinary)) as unknown[])[0], 'server', 'HELLO AUTH authenticates')
  t.equal(await greeted.get('k'), 'v')
})

t.test('a client with the ordinary password gets NOPERM for the internal commands', async (t) => {
  const ordinary = shardClient(t, shard.port, { password: firstOrdinary })
  const peer = shardClient(t, shard.port, { username: 'shardline', password: internal })
  await ordinary.set('kept', '1')
  for (const [name, ...args] of [['sl.sync', '?', '-1'], ['sl.setv', 'kept', 'x', '99'], ['sl.scan', '0'], ['flushall'], ['flushdb']]) {
    await t.rejects(ordinary.call(name, ...args), new RegExp(`^NOPERM this user has no permissions to run the '${name}' command$`), name)
  }
  t.equal(await ordinary.get('kept'), '1', 'nothing was flushed')
  t.equal(await peer.call('sl.setv', 'pinned', 'x', '99'), 1, 'the internal password runs them')
  t.equal(await peer.get('pinned'), 'x')
})

t.test('a changed password file applies to new connections within 2 s; open ones stay', async (t) => {
  const before = shardClient(t, shard.port, { password: firstOrdinary })
  t.equal(await before.ping(), 'PONG')
  writeFileSync(passwordFile, `${secondOrdinary}\n`)
  await waitFor(async () => {
    const attempt = shardClient(t, shard.port)
    const refused = await attempt.call('auth', firstOrdinary).then(() => false, (error: Error) => /^WRONGPASS/.test(error.message))
    attempt.disconnect()
    return refused
  }, 2000, () => 'the old password to be refused')
  const after = shardClient(t, shard.port, { password: secondOrdinary })
  t.equal(await after.get('k'), 'v', 'the new password is taken')
  t.equal(await before.get('k'), 'v', 'a connection authenticated before keeps working')
})

t.test('the admin HTTP: probes open, everything else for an internal password as a bearer token', async (t) => {
  t.equal((await adminGet(`${shard.adminUrl}/healthz`)).status, 200)
  t.equal((await adminGet(`${shard.adminUrl}/readyz`)).status, 200)
  for (const path of ['/stats', '/metrics', '/keys/k', '/nowhere']) {
    for (const token of [undefined, secondOrdinary]) {
      const response = await adminGet(`${shard.adminUrl}${path}`, { token })
      t.equal(response.status, 401, `${path} with ${token ? 'an ordinary password' : 'no token'}`)
      t.equal(response.headers['www-authenticate'], 'Bearer realm="shardline"')
      t.equal(JSON.parse(response.text).code, 'unauthorized')
      seen.push(response.text)
    }
  }
  const stats = await adminGet(`${shard.adminUrl}/stats`, { token: internal })
  t.equal(stats.status, 200)
  const metrics = await adminGet(`${shard.adminUrl}/metrics`, { token: internal })
  for (const reason of ['noauth', 'wrongpass', 'noperm']) {
    t.match(metrics.text, new RegExp(`^shardline_shard_auth_failures_total\\{reason="${reason}",shard="guarded"\\} [1-9]`, 'm'), `${reason} counted`)
  }
  seen.push(stats.text, metrics.text)
})

t.test('no password appears in the log, INFO, CONFIG GET or an error reply', async (t) => {
  const peer = shardClient(t, shard.port, { password: internal })
  seen.push(await peer.info('everything'))
  const config = (await peer.call('config', 'get', '*')) as string[]
  t.equal(config[config.indexOf('requirepass') + 1], '', 'requirepass reads empty')
  seen.push(JSON.stringify(config))
  seen.push(await peer.call('auth', secondOrdinary + 'x').then(String, (error: Error) => error.message))
  seen.push(shard.output())
  for (const password of secrets) t.notOk(seen.some((text) => text.includes(password)), 'a password is nowhere')
})
