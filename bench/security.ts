// Security's cost, side by side in one run: router GETs with tenants' bearer tokens vs an open router, its HTTPS
// front vs HTTP and vs HAProxy terminating TLS over the same shards, and shard RESP over TLS vs redis-server over TLS.
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCertificateAuthority, issueCertificate } from '../cli/local-tls.ts'
import { codeVersion, cpuSeconds, formatTable, freePort, HOST, loadAverage, median, redisBenchmark, runMain, startRedis, startShard, stopServer, type BenchmarkLoad, type RunningServer } from './lib.ts'
import { checkReads, closeAgent, KEY_COUNT, loadThroughKeysApi, loadThroughRouter } from './router/keys.ts'
import { startHaproxy, startRouter, type Backend, type RunningRouter } from './router/processes.ts'
import { GET_SCRIPT, runWrk } from './router/wrk.ts'

// --quick: a smoke test of the whole pipeline (2-second runs, one round); its numbers mean little.
const QUICK = process.argv.includes('--quick')
const SECONDS = QUICK ? 2 : 8
const ROUNDS = QUICK ? 1 : 3
const CONNECTIONS = 32
const THREADS = 2
const TOKEN = 'bench-token-0123456789abcdef'
const NAMESPACE = 'bench'
const AUTH_TARGET = 0.95
const RESP_LOAD: BenchmarkLoad = { requests: QUICK ? 50_000 : 300_000, clients: 50, valueBytes: 100, keyspace: 10_000, pipeline: 1, timeoutMs: 120_000 }

interface HttpTarget {
  label: string
  url: string
  /** Path before the key: /key: for the routers, /keys/key: for HAProxy over the shards' admin API. */
  prefix: string
  pid: number
  headers: string[]
}

interface HttpRun {
  rps: number
  /** The server's CPU per request (µs); for HAProxy its own process. */
  cpuMicros: number
  errors: number
}

async function measureHttp(target: HttpTarget): Promise<HttpRun> {
  const before = cpuSeconds(target.pid)
  const counts = await runWrk(target.label, 0, target.prefix, { threads: THREADS, connections: CONNECTIONS, seconds: SECONDS, script: GET_SCRIPT, url: target.url, headers: target.headers })
  const cpu = cpuSeconds(target.pid) - before
  return { rps: counts.rps, cpuMicros: (cpu / Math.max(1, counts.requests)) * 1e6, errors: counts.non2xx + counts.socketErrors }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-bench-security-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const ca = await createCertificateAuthority('shardline bench CA')
  const issued = await issueCertificate(ca, { hosts: ['localhost', HOST] })
  const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), pem: join(dir, 'haproxy.pem') }
  writeFileSync(files.ca, ca.cert)
  writeFileSync(files.cert, issued.cert)
  writeFileSync(files.key, issued.key)
  writeFileSync(files.pem, `${issued.cert.trimEnd()}\n${issued.key}`)
  console.log(`code: ${codeVersion()}; node ${process.version}; load average ${loadAverage()} at start`)

  // --- HTTP: three routers over the same three shards, and HAProxy with TLS over the shards' /keys.
  const shards: RunningServer[] = []
  for (let i = 0; i < 3; i++) shards.push(await startShard({ name: `s${i}`, maxMemory: '64mb' }))
  const backends: Backend[] = shards.map((shard, i) => ({ name: `s${i}`, port: shard.port, adminPort: Number(new URL(shard.adminUrl!).port) }))
  const tokenHash = createHash('sha256').update(TOKEN).digest('hex')
  const open = await startRouter(dir, backends, undefined, [], { name: 'open' })
  const tenants = await startRouter(dir, backends, undefined, [], {
    name: 'tenants',
    // Three tenants, as config/secure.yaml has: each request's token is checked against every tenant's.
    config: ['tenants:', ...['ops', 'other', 'bench'].flatMap((name) => [
      `  - name: ${name}`,
      `    tokens: ["sha256:${name === 'bench' ? tokenHash : createHash('sha256').update(`${name}-token`).digest('hex')}"]`,
      `    permissions: [${name === 'ops' ? 'admin' : 'read, write'}]`,
      ...(name === 'ops' ? [] : [`    namespace: ${name}`]),
    ])],
  })
  const https = await startRouter(dir, backends, undefined, [], { name: 'https', config: ['tls:', `  cert: ${files.cert}`, `  key: ${files.key}`] })
  const haproxyTls = await startHaproxy(dir, await freePort(), backends, files.pem)
  // Every router reads key:N from the same shards: the tenant's keys are "bench:key:N" on the wire.
  await loadThroughRouter(open.dataPort)
  await loadThroughRouter(open.dataPort, `${NAMESPACE}:`)
  for (const backend of backends) await loadThroughKeysApi(backend.adminPort)
  await checkReads(open.dataPort, '/', 50)
  closeAgent()
  console.log(`loaded ${KEY_COUNT} keys through the open router (also under the tenant's namespace) and into every shard's /keys`)

  const routerTarget = (label: string, router: RunningRouter, scheme: string, headers: string[] = []): HttpTarget => ({ label, url: `${scheme}://${HOST}:${router.dataPort}`, prefix: '/key:', pid: router.pid, headers })
  const targets: Record<string, HttpTarget> = {
    open: routerTarget('router, HTTP, open', open, 'http'),
    auth: routerTarget('router, HTTP, bearer token (3 tenants)', tenants, 'http', [`Authorization: Bearer ${TOKEN}`]),
    https: routerTarget('router, HTTPS, open', https, 'https'),
    haproxy: { label: 'HAProxy TLS -> shards /keys', url: `https://${HOST}:${haproxyTls.port}`, prefix: '/keys/key:', pid: haproxyTls.pid, headers: [] },
  }
  // JIT warm-up, not measured.
  for (const target of Object.values(targets)) await runWrk(`${target.label} warm-up`, 0, target.prefix, { threads: THREADS, connections: CONNECTIONS, seconds: QUICK ? 1 : 3, script: GET_SCRIPT, url: target.url, headers: target.headers })
  const httpRuns = new Map<string, HttpRun[]>(Object.keys(targets).map((id) => [id, []]))
  for (let round = 1; round <= ROUNDS; round++) {
    // Interleaved, so that the machine's noise lands on every target alike.
    for (const [id, target] of Object.entries(targets)) httpRuns.get(id)!.push(await measureHttp(target))
    console.log(`round ${round}/${ROUNDS}: ${[...httpRuns].map(([id, runs]) => `${id} ${Math.round(runs.at(-1)!.rps)}`).join(', ')} req/s`)
  }
  const httpMedian = (id: string) => ({ rps: median(httpRuns.get(id)!.map((run) => run.rps)), cpu: median(httpRuns.get(id)!.map((run) => run.cpuMicros)), errors: httpRuns.get(id)!.reduce((sum, run) => sum + run.errors, 0) })
  for (const server of [...shards]) await stopServer(server)

  // --- RESP: a shard and redis-server, each plain and over TLS, GET and SET with redis-benchmark.
  const shardTlsConfig = join(dir, 'shard-tls.yaml')
  writeFileSync(shardTlsConfig, `tls:\n  cert: ${files.cert}\n  key: ${files.key}\n`)
  const plainShard = await startShard({ name: 'plain' })
  const tlsShard = await startShard({ name: 'tls', config: { file: shardTlsConfig, tls: true } })
  const redisTlsPort = await freePort()
  const redis = await startRedis(['--tls-port', String(redisTlsPort), '--tls-cert-file', files.cert, '--tls-key-file', files.key, '--tls-ca-cert-file', files.ca, '--tls-auth-clients', 'no'])
  const respTargets: Record<string, { server: RunningServer; tls: boolean }> = {
    'shard plain': { server: plainShard, tls: false },
    'shard TLS': { server: tlsShard, tls: true },
    'redis plain': { server: redis, tls: false },
    'redis TLS': { server: { ...redis, port: redisTlsPort }, tls: true },
  }
  const tlsArgs = ['--tls', '--cacert', files.ca]
  const respRuns = new Map<string, { rps: number[]; cpu: number[] }>(Object.keys(respTargets).map((id) => [id, { rps: [], cpu: [] }]))
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [id, { server, tls }] of Object.entries(respTargets)) {
      for (const test of ['SET', 'GET']) {
        const run = await redisBenchmark(server, test, RESP_LOAD, tls ? tlsArgs : [])
        respRuns.get(id)!.rps.push(run.rps)
        respRuns.get(id)!.cpu.push(run.cpuMicros)
      }
    }
    console.log(`RESP round ${round}/${ROUNDS} done`)
  }

  const m = (id: string) => httpMedian(id)
  const fmt = (n: number, digits = 0) => n.toFixed(digits)
  const authRatio = m('auth').rps / m('open').rps
  console.log('\nHTTP GET of 100-byte values, wrk 2 threads x 32 keep-alive connections, medians of ' + ROUNDS + ' rounds')
  console.log(formatTable(['target', 'req/s', 'server CPU µs/req', 'vs open HTTP router', 'errors'], Object.entries(targets).map(([id, target]) => [target.label, fmt(m(id).rps), fmt(m(id).cpu, 1), fmt(m(id).rps / m('open').rps, 2), m(id).errors])))
  console.log(`auth on / off: ${authRatio.toFixed(3)}x throughput (target >= ${AUTH_TARGET}: ${authRatio >= AUTH_TARGET ? 'met' : 'MISSED'}), CPU per request ${(m('auth').cpu / m('open').cpu).toFixed(3)}x`)
  console.log(`HTTPS / HTTP (router): ${(m('https').rps / m('open').rps).toFixed(3)}x; router HTTPS / HAProxy TLS: ${(m('https').rps / m('haproxy').rps).toFixed(3)}x`)
  const r = (id: string) => ({ rps: median(respRuns.get(id)!.rps), cpu: median(respRuns.get(id)!.cpu) })
  console.log(`\nRESP SET+GET, redis-benchmark -c ${RESP_LOAD.clients} -P 1, ${RESP_LOAD.requests} requests per test, medians over both tests and ${ROUNDS} rounds`)
  console.log(formatTable(['server', 'req/s', 'server CPU µs/req', 'TLS / plain'], Object.keys(respTargets).map((id) => [id, fmt(r(id).rps), fmt(r(id).cpu, 1), id.endsWith('TLS') ? fmt(r(id).rps / r(id.replace('TLS', 'plain')).rps, 2) : ''])))
  console.log(`shard TLS / redis TLS: ${(r('shard TLS').rps / r('redis TLS').rps).toFixed(3)}x throughput; load average ${loadAverage()} at the end`)
}

runMain(main)
