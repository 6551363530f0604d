// `shardline cluster` with config/secure.yaml (its ports 0) in a fresh working directory: it makes the
// throwaway CA and certificate in .shardline/tls/ and reuses them on the next start, serves HTTPS with
// tenants kept apart, lets only the admin tenant read /admin/config, and its shards answer redis-cli
// over TLS with the shard password. Tokens and password come from the environment, as the issue says.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run, waitFor, type Teardown } from '../helpers/processes.ts'

const CLI = new URL('../../cli/shardline.ts', import.meta.url).pathname
const SECURE_YAML = new URL('../../config/secure.yaml', import.meta.url).pathname
const READY = /shardline cluster ready: (https:\/\/[\d.:]+) \(admin (https:\/\/[\d.:]+), resp ([\d.:]+)\), 6 shard processes/

const dir = mkdtempSync(join(tmpdir(), 'shardline-secure-cluster-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
// The same cluster on ports the kernel picks: every fixed loopback port becomes 0.
writeFileSync(join(dir, 'cluster.yaml'), readFileSync(SECURE_YAML, 'utf8').replaceAll(/127\.0\.0\.1:\d+/g, '127.0.0.1:0'))
const secrets = {
  SHARDLINE_TOKEN_ALICE: randomBytes(24).toString('hex'),
  SHARDLINE_TOKEN_BOB: randomBytes(24).toString('hex'),
  SHARDLINE_TOKEN_OPS: randomBytes(24).toString('hex'),
  SHARDLINE_SHARD_PASSWORD: randomBytes(24).toString('hex'),
}
const caFile = join(dir, '.shardline/tls/ca.pem')

interface Cluster {
  child: ChildProcess
  output(): string
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>
}

/** `shardline cluster --config cluster.yaml` in dir, killed with every process it started when the test ends. */
function startCluster(t: Teardown, env: Record<string, string>): Cluster {
  const child = spawn(process.execPath, [CLI, 'cluster', '--config', 'cluster.yaml', '--max-memory', '16mb'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SHARDLINE_LOG_FORMAT: 'json', ...env } })
  let output = ''
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  const exited = once(child, 'exit')
  t.teardown(() => {
    child.kill('SIGKILL')
    for (const pid of new Set([...output.matchAll(/"pid":(\d+)/g)].map((m) => Number(m[1])))) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  })
  return {
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM')
      return ((await exited) as [number | null])[0]
    },
  }
}

async function ready(cluster: Cluster): Promise<RegExpExecArray> {
  return waitFor(() => {
    if (cluster.child.exitCode !== null) throw new Error(`the cluster exited early:\n${cluster.output()}`)
    return READY.exec(cluster.output())
  }, 120_000, cluster.output)
}

/** curl, trusting only the cluster's CA, with a tenant's token: the status and the body. */
async function curl(url: string, token: string, ...args: string[]): Promise<{ status: number; body: string }> {
  const result = await run('curl', ['-sS', '--cacert', caFile, '-H', `Authorization: Bearer ${token}`, '-w', '\n%{http_code}', ...args, url])
  if (result.code !== 0) throw new Error(`curl ${url}: ${result.stderr}`)
  const lines = result.stdout.split('\n')
  return { status: Number(lines.at(-1)), body: lines.slice(0, -1).join('\n') }
}

t.test('a token missing from the environment stops the cluster before anything starts', async (t) => {
  const cluster = startCluster(t, { ...secrets, SHARDLINE_TOKEN_BOB: '' })
  t.equal(await once(cluster.child, 'exit').then(([code]) => code), 2, 'a config error')
  t.match(cluster.output(), 'tenants.bob.tokens: environment variable SHARDLINE_TOKEN_BOB is not set')
  t.notMatch(cluster.output(), /shardline shard \S+ ready/, 'no shard started')
  t.notOk(existsSync(caFile), 'no certificate made either')
})

t.test('the secure local cluster: HTTPS with the CA, tenants kept apart, admin for ops, redis-cli --tls to a shard', async (t) => {
  const cluster = startCluster(t, secrets)
  const [, url, adminUrl] = await ready(cluster)
  t.ok(existsSync(caFile), 'the CA is in .shardline/tls/ under the working directory')
  // Printed just after the ready line, which may arrive in an earlier chunk of output.
  const tryLine = 'try: curl --cacert .shardline/tls/ca.pem -H "Authorization: Bearer $SHARDLINE_TOKEN_ALICE"'
  t.ok(await waitFor(() => cluster.output().includes(tryLine), 10_000, cluster.output), 'the try: line says how to reach it')

  const json = ['-H', 'content-type: application/json']
  t.equal((await curl(`${url}/k`, secrets.SHARDLINE_TOKEN_BOB, '-XPOST', ...json, '-d', '{"value":"bob\'s","ttl":60}')).status, 200, 'bob writes k over HTTPS')
  t.equal((await curl(`${url}/k`, secrets.SHARDLINE_TOKEN_ALICE, '-XPOST', ...json, '-d', '{"value":"alice\'s","ttl":60}')).status, 200, 'alice writes her own k')
  t.same(JSON.parse((await curl(`${url}/k`, secrets.SHARDLINE_TOKEN_ALICE)).body), { value: 'alice\'s' }, 'alice reads her k')
  t.same(JSON.parse((await curl(`${url}/k`, secrets.SHARDLINE_TOKEN_BOB)).body), { value: 'bob\'s' }, 'bob reads his k, not alice\'s')
  t.equal((await curl(`${url}/bob:k`, secrets.SHARDLINE_TOKEN_ALICE)).status, 404, 'bob\'s namespace written into alice\'s key is still alice\'s key')
  t.equal((await curl(`${url}/k`, 'not-a-token')).status, 401, 'a bad token: 401')
  t.equal((await curl(`${url}/k`, secrets.SHARDLINE_TOKEN_OPS)).status, 403, 'ops administers, it does not read data')
  const plain = await run('curl', ['-sS', `${url}/k`])
  t.not(plain.code, 0, 'a client that does not trust the CA gets no answer')

  const config = await curl(`${adminUrl}/admin/config`, secrets.SHARDLINE_TOKEN_OPS)
  t.equal(config.status, 200, 'ops reads /admin/config')
  t.equal((await curl(`${adminUrl}/admin/config`, secrets.SHARDLINE_TOKEN_ALICE)).status, 403, 'alice does not')
  for (const [name, secret] of Object.entries(secrets)) {
    t.notOk(config.body.includes(secret), `/admin/config does not show ${name}`)
    t.notOk(cluster.output().includes(secret), `no log line shows ${name}`)
  }

  const [, host, port] = /shardline shard s0 ready: resp ([\d.]+):(\d+)/.exec(cluster.output())!
  const redisCli = (...args: string[]) => run('redis-cli', ['--tls', '--cacert', caFile, '-h', host, '-p', port, ...args])
  t.equal((await redisCli('--no-auth-warning', '-a', secrets.SHARDLINE_SHARD_PASSWORD, 'PING')).stdout.trim(), 'PONG', 'redis-cli --tls -a <shard password> PING')
  t.match((await redisCli('GET', 'alice:k')).stdout, /NOAUTH/, 'without the password a shard answers nothing but PING')
  t.equal(await cluster.stop(), 0, 'SIGTERM stops the cluster')

  const ca = readFileSync(caFile)
  const again = startCluster(t, secrets)
  const [, newUrl] = await ready(again)
  t.same(readFileSync(caFile), ca, 'the second start reuses the CA')
  t.equal((await curl(`${newUrl}/k`, secrets.SHARDLINE_TOKEN_ALICE, '-XPOST', ...json, '-d', '{"value":"again"}')).status, 200, 'a client trusting the first start\'s CA still reaches the cluster')
  t.equal(await again.stop(), 0, 'and stops it again')
})
