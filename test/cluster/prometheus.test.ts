// The Grafana dashboards against a real Prometheus (Debian's, /usr/bin/prometheus): the local cluster
// runs, Prometheus scrapes every process's admin /metrics, traffic flows, and every panel's PromQL answers.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { DASHBOARD_DIR } from '../../scripts/build-dashboards.ts'
import { waitFor } from '../helpers/processes.ts'

const PROMETHEUS = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus'
const CLI = new URL('../../cli/shardline.ts', import.meta.url).pathname
const LOOPBACK_TARGET = /^127\.0\.0\.1:\d+$/
/** Grafana's built-in variables, as Grafana would substitute them for a 1 s scrape interval. */
const GRAFANA_VARIABLES: Record<string, string> = { '$__rate_interval': '10s', '$__interval': '1s', '$__range': '5m' }

interface Panel {
  title: string
  description?: string
  targets?: Array<{ expr: string; refId: string }>
}
interface Dashboard {
  uid: string
  title: string
  panels: Panel[]
}

const dashboards: Dashboard[] = readdirSync(DASHBOARD_DIR).filter((file) => file.endsWith('.json')).map((file) => JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8')))
const queries = dashboards.flatMap((dashboard) => dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ dashboard: dashboard.title, panel: panel.title, expr: target.expr }))))

/** Replaces Grafana's built-in variables; any other $variable in a panel is an error. */
function toPromQL(expr: string): string {
  const text = expr.replace(/\$__\w+/g, (name) => {
    const value = GRAFANA_VARIABLES[name]
    if (!value) throw new Error(`unknown Grafana variable ${name} in ${expr}`)
    return value
  })
  if (text.includes('$')) throw new Error(`a panel query uses a dashboard variable the test cannot fill: ${expr}`)
  return text
}

/** The pids whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).flatMap((name) => {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid ? [Number(name)] : []
    } catch {
      return []
    }
  })
}
const commandLine = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')

function startLogged(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
  let output = ''
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  return { child, output: () => output }
}

const kill = (pid: number, signal: NodeJS.Signals = 'SIGKILL') => {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

t.test('every dashboard panel returns a series from Prometheus scraping the local cluster', async (t) => {
  if (!existsSync(PROMETHEUS)) {
    t.fail(`${PROMETHEUS} is missing: install Debian's prometheus package (apt-get install -y prometheus; .ci/run does) or set PROMETHEUS_BIN`)
    return
  }
  t.ok(queries.length >= 20, `${queries.length} panel queries in ${dashboards.length} dashboards`)
  const dir = mkdtempSync(join(tmpdir(), 'shardline-prometheus-'))
  const config = join(dir, 'cluster.yaml')
  writeFileSync(config, stringify({
    listen: { data: '127.0.0.1:0', admin: '127.0.0.1:0' },
    pools: { main: { hotKeys: { minRate: 20, copies: 2, copyTtlMs: 5000 }, shards: [{ name: 'a', primary: '127.0.0.1:0', replicas: ['127.0.0.1:0'] }, { name: 'b', primary: '127.0.0.1:0', replicas: ['127.0.0.1:0'] }] } },
    health: { heartbeatMs: 100, probeInitialMs: 100, probeMaxMs: 500 },
  }))

  // The cluster and everything it starts die with the test, whatever happens.
  const cluster = startLogged(process.execPath, [CLI, 'cluster', '--config', config, '--max-memory', '16mb'], { ...process.env, SHARDLINE_LOG_FORMAT: 'json' })
  const clusterChildren = new Set<number>()
  const stopCluster = () => {
    for (const pid of childrenOf(cluster.child.pid!)) clusterChildren.add(pid)
    kill(cluster.child.pid!)
    for (const pid of clusterChildren) kill(pid)
  }
  t.teardown(stopCluster)
  // Should this process end without its teardowns (an uncaught error), the cluster still goes.
  process.once('exit', stopCluster)
  const [, url, adminUrl] = await waitFor(() => {
    if (cluster.child.exitCode !== null) throw new Error(`the cluster exited early:\n${cluster.output()}`)
    return /shardline cluster ready: (http:\/\/[\d.:]+) \(admin (http:\/\/[\d.:]+)\), 4 shard processes/.exec(cluster.output())
  }, 45_000, cluster.output)
  for (const pid of childrenOf(cluster.child.pid!)) clusterChildren.add(pid)
  const processByName = (pattern: RegExp) => [...clusterChildren].find((pid) => pattern.test(commandLine(pid).join(' ')))

  const shardAdmins = [...cluster.output().matchAll(/shardline shard \S+ ready: resp [\d.:]+ admin http:\/\/([\d.:]+)/g)].map((m) => m[1])
  const shardPorts = new Map([...cluster.output().matchAll(/shardline shard (\S+) ready: resp 127\.0\.0\.1:(\d+)/g)].map((m) => [m[1], Number(m[2])]))
  const routerAdmin = new URL(adminUrl).host
  const targets = [routerAdmin, ...shardAdmins]
  t.equal(shardAdmins.length, 4, 'four shard admin ports')
  t.ok(targets.every((target) => LOOPBACK_TARGET.test(target)), `every scrape target is on loopback: ${targets.join(' ')}`)

  writeFileSync(join(dir, 'prometheus.yml'), stringify({
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: [
      { job_name: 'shardline-router', static_configs: [{ targets: [routerAdmin] }] },
      { job_name: 'shardline-shard', static_configs: [{ targets: shardAdmins }] },
    ],
  }))
  const prometheus = startLogged(PROMETHEUS, [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    // Port 0, like every process here: a port picked beforehand can be taken by a test running
    // in parallel before Prometheus binds it. Prometheus logs the one it bound.
    '--web.listen-address=127.0.0.1:0',
    '--log.level=info',
  ])
  process.once('exit', () => kill(prometheus.child.pid!))
  t.teardown(async () => {
    const exited = prometheus.child.exitCode === null ? once(prometheus.child, 'exit') : null
    kill(prometheus.child.pid!)
    await exited
    rmSync(dir, { recursive: true, force: true })
  })
  const promUrl = await waitFor(async () => {
    if (prometheus.child.exitCode !== null) throw new Error(`prometheus exited:\n${prometheus.output()}`)
    const listening = /msg="Listening on" address=(127\.0\.0\.1:\d+)/.exec(prometheus.output())
    return listening && (await fetch(`http://${listening[1]}/-/ready`).catch(() => null))?.ok && `http://${listening[1]}`
  }, 20_000, prometheus.output)

  const query = async (promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
    const response = await fetch(`${promUrl}/api/v1/query?${new URLSearchParams({ query: promql })}`)
    const body = (await response.json()) as { status: string; error?: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }
    if (body.status !== 'success') throw new Error(`Prometheus refused ${promql}: ${body.error}`)
    return body.data!.result
  }

  const started = Date.now()
  const phase = (name: string) => t.comment(`${name} at ${Date.now() - started} ms`)
  // Traffic: sets, hits, misses, deletes, a batch, a bad request; a RESP error at a shard; a config
  // reload (SIGHUP); a replica killed, so the router knocks it out.
  const json = { 'content-type': 'application/json' }
  let requests = 0
  const send = async (path: string, init?: RequestInit) => {
    requests++
    const response = await fetch(`${url}${path}`, init)
    await response.arrayBuffer()
    return response.status
  }
  for (let i = 0; i < 40; i++) t.equal(await send(`/key${i}`, { method: 'POST', headers: json, body: JSON.stringify({ value: `v${i}`, ttl: i % 2 ? 1 : 60 }) }), 200)
  for (let i = 0; i < 40; i++) await send(`/key${i}`)
  for (let i = 0; i < 10; i++) t.equal(await send(`/missing${i}`), 404)
  t.equal(await send('/key0', { method: 'DELETE' }), 200)
  t.equal(await send('/-/batch', { method: 'POST', headers: json, body: JSON.stringify({ ops: [{ op: 'get', key: 'key1' }, { op: 'set', key: 'k', value: 1 }] }) }), 200)
  t.equal(await send('/bad', { method: 'POST', headers: json, body: '{not json' }), 400, 'a bad request')
  const resp = createConnection({ host: '127.0.0.1', port: shardPorts.get('b')! })
  resp.write('NOSUCHCOMMAND\r\n')
  t.match((await once(resp, 'data'))[0].toString(), /^-ERR unknown command/, 'a shard answers an unknown command with an error')
  resp.destroy()
  // A malformed frame: the shard answers a protocol error and drops the connection.
  const malformed = createConnection({ host: '127.0.0.1', port: shardPorts.get('b')! })
  malformed.write('*1\r\n$abc\r\n')
  t.match((await once(malformed, 'data'))[0].toString(), /^-ERR Protocol error/, 'a malformed frame gets a protocol error')
  malformed.destroy()

  phase('traffic sent')
  // A hot key: read until the router spreads it over copies, then read the copies.
  t.equal(await send('/hot', { method: 'POST', headers: json, body: JSON.stringify({ value: 'h' }) }), 200)
  await waitFor(async () => {
    await Promise.all(Array.from({ length: 50 }, () => send('/hot')))
    const { pools } = (await (await fetch(`${adminUrl}/admin/hotkeys`)).json()) as { pools: Record<string, Array<{ key: string; spread: boolean }>> }
    return pools.main.some((hitter) => hitter.key === 'hot' && hitter.spread)
  }, 10_000, () => 'the key never became hot')
  for (let i = 0; i < 5; i++) await Promise.all(Array.from({ length: 20 }, () => send('/hot')))

  phase('hot key spread')
  const routerPid = processByName(/ router --config /)
  const replicaPid = processByName(/--name a\.replica1 /)
  t.ok(routerPid && replicaPid, 'found the router and a replica among the cluster\'s children')
  kill(routerPid!, 'SIGHUP')
  kill(replicaPid!, 'SIGKILL')
  await waitFor(async () => (await (await fetch(`${adminUrl}/admin/shards`)).json() as { destinations: Array<{ knockedOut: boolean }> }).destinations.some((d) => d.knockedOut), 10_000, () => 'the router knocked out the killed replica')
  for (let i = 0; i < 20; i++) await send(`/key${i}`)

  phase('replica knocked out')
  // Prometheus has scraped the traffic once its counters show every request and the reload and knock-out.
  await waitFor(async () => {
    const [total] = await query('sum(shardline_router_requests_total)')
    const [reloads] = await query('sum(shardline_router_config_reloads_total)')
    const [knockouts] = await query('sum(shardline_router_knockouts_total)')
    return total && Number(total.value[1]) >= requests && reloads && knockouts
  }, 20_000, () => `Prometheus did not see ${requests} requests, a reload and a knock-out`)

  phase('Prometheus scraped')
  const empty: string[] = []
  for (const panel of queries) {
    const promql = toPromQL(panel.expr)
    // A rate needs two samples of a new series: poll briefly rather than sleep.
    const result = await waitFor(async () => {
      const series = await query(promql)
      return series.length > 0 ? series : null
    }, 10_000).catch(() => [])
    if (result.length === 0) {
      // Say which of the query's metrics Prometheus has no series of.
      const names = [...new Set(promql.match(/\b(shardline|process|nodejs)_[a-z0-9_]+/g))]
      const missing = (await Promise.all(names.map(async (name) => ((await query(`count(${name})`)).length ? null : name)))).filter(Boolean)
      empty.push(`${panel.dashboard} / ${panel.panel}: ${promql} (no series of: ${missing.join(', ') || 'none; the expression filters them all'})`)
    }
    t.ok(result.length > 0, `${panel.dashboard} / ${panel.panel}: ${result.length} series`)
  }
  phase('queries answered')
  t.same(empty, [], 'every panel query returns at least one series')

  // The seed's metrics each have a panel.
  const panelFor = (pattern: RegExp) => queries.filter((q) => pattern.test(q.expr)).map((q) => `${q.dashboard} / ${q.panel}`)
  const seed: Record<string, RegExp> = {
    'hit/miss ratio': /shardline_shard_keyspace_hits_total.*\/.*shardline_shard_keyspace_misses_total/,
    'latency p50': /histogram_quantile\(0\.5, .*request_duration_seconds/,
    'latency p95': /histogram_quantile\(0\.95, .*request_duration_seconds/,
    'latency p99': /histogram_quantile\(0\.99, .*request_duration_seconds/,
    'memory per node': /process_resident_memory_bytes\{shard!=""\}/,
    'connection-pool saturation': /shardline_router_destination_(queued|in_flight)/,
    'hot keys': /shardline_router_hot_keys/,
    'replication lag': /shardline_replication_lag_seconds/,
  }
  for (const [metric, pattern] of Object.entries(seed)) t.ok(panelFor(pattern).length > 0, `${metric}: ${panelFor(pattern).join('; ')}`)
})
