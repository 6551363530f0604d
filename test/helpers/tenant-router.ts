// A router process with tenants over real shard processes, for the tenant tests: its config (the
// tenants block given), its HTTP and RESP addresses, and requests sent with a tenant's token.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { START_TIMEOUT_MS, startRouterProcess, startShardProcess, waitFor, type RouterProcess, type ShardProcess, type Teardown } from './processes.ts'

export interface TenantRouter {
  router: RouterProcess
  shards: ShardProcess[]
  respPort: number
  configFile: string
  /** A directory the test may write token files into; removed at teardown. */
  dir: string
}

export interface TenantRouterOptions {
  shards?: number
  /** The YAML of the tenants list (indented as the value of `tenants:`); given the directory the files are in. */
  tenants: string | ((dir: string) => string)
  /** Files written into the directory before the router starts (token files), by name. */
  files?: Record<string, string>
  /** hotKeys settings of the pool, as YAML flow mapping text. */
  hotKeys?: string
}

export async function startTenantRouter(t: Teardown, options: TenantRouterOptions): Promise<TenantRouter> {
  const dir = mkdtempSync(join(tmpdir(), 'shardline-tenants-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const shards = await Promise.all(Array.from({ length: options.shards ?? 2 }, (_, i) => startShardProcess(t, ['--name', `s${i}`])))
  for (const [name, text] of Object.entries(options.files ?? {})) writeFileSync(join(dir, name), text)
  const configFile = join(dir, 'router.yaml')
  writeFileSync(configFile, `listen: { data: 127.0.0.1:0, admin: 127.0.0.1:0, resp: 127.0.0.1:0 }
pools:
  main:
    shards:
${shards.map((shard, i) => `      - { name: s${i}, primary: { address: 127.0.0.1:${shard.port}, admin: 127.0.0.1:${shard.adminPort} } }`).join('\n')}
${options.hotKeys ? `    hotKeys: ${options.hotKeys}\n` : ''}tenants:
${typeof options.tenants === 'string' ? options.tenants : options.tenants(dir)}
`)
  const router = await startRouterProcess(t, configFile)
  const respPort = Number(/resp [\d.]+:(\d+)/.exec(router.output())![1])
  // Ready once every pool has a connected shard: the first requests then find one.
  await waitFor(async () => (await fetch(`${router.adminUrl}/readyz`)).status === 200, START_TIMEOUT_MS, () => 'the router is ready')
  return { router, shards, respPort, configFile, dir }
}

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: unknown
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 })

/**
 * One HTTP request with the path sent exactly as given (fetch would resolve "..", "%2e%2e" and the
 * like before sending); token: the Bearer token, none when undefined.
 */
export function send(baseUrl: string, method: string, path: string, token?: string, body?: unknown): Promise<Answer> {
  const url = new URL(baseUrl)
  const payload = body === undefined ? undefined : JSON.stringify(body)
  const headers: Record<string, string> = {}
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  if (payload !== undefined) headers['content-type'] = 'application/json'
  return new Promise((resolve, reject) => {
    const request = http.request({ agent, host: url.hostname, port: url.port, method, path, headers }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: response.statusCode!, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) })
      })
      response.on('error', reject)
    })
    request.on('error', reject)
    request.end(payload)
  })
}

/** A RESP client of the router; auth: the AUTH arguments sent on connect (none when absent). */
export function respClient(t: Teardown, port: number, auth?: { tenant?: string; token: string }): Redis {
  const redis = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, enableReadyCheck: false, username: auth?.tenant, password: auth?.token, lazyConnect: true })
  t.teardown(() => redis.disconnect())
  return redis
}

/** The router's /metrics value of one series (0 when it is not there yet). */
export async function metricValue(adminUrl: string, series: string, token?: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })).text()
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}
