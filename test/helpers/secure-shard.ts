// Shards with AUTH and TLS for the security tests: started as real processes whose ready line may
// show an https admin URL, ioredis clients that present a password (over TLS when given a CA), and
// admin requests with a bearer token.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { Agent, request } from 'undici'
import { START_TIMEOUT_MS, superviseProcess, type ShardProcess, type Teardown } from './processes.ts'

const CLI = fileURLToPath(new URL('../../cli/shardline.ts', import.meta.url))
const READY = /shardline shard \S+ ready: resp [\d.]+:(\d+) admin (https?:\/\/[\d.]+:(\d+))/

export async function startSecureShard(t: Teardown, args: string[]): Promise<ShardProcess> {
  const child = spawn(process.execPath, [CLI, 'shard', '--port', '0', '--admin-port', '0', ...args], { env: { ...process.env, SHARDLINE_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] })
  const { match, ...started } = await superviseProcess(t, child, READY, 'shard', START_TIMEOUT_MS)
  return { ...started, port: Number(match[1]), adminUrl: match[2], adminPort: Number(match[3]) }
}

export interface Credentials {
  username?: string
  password?: string
  /** Connect over TLS, trusting this CA's certificate. */
  ca?: string
  /** A client certificate and its key, for a shard that asks for one. */
  cert?: string
  key?: string
}

/** An ioredis client that authenticates as it connects; replies are what the shard sent (no ready check). */
export function shardClient(t: Teardown, port: number, credentials: Credentials = {}): Redis {
  const { username, password, ca, cert, key } = credentials
  const redis = new Redis({ port, host: '127.0.0.1', username, password, maxRetriesPerRequest: 0, enableReadyCheck: false, retryStrategy: () => null, ...(ca ? { tls: { ca, cert, key } } : {}) })
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  return redis
}

/** GET from a shard's admin, with a bearer token, a CA to trust and a client certificate when given. */
export async function adminGet(url: string, options: { token?: string; ca?: string; cert?: string; key?: string } = {}) {
  const { ca, cert, key } = options
  const dispatcher = new Agent({ connect: { ca, cert, key } })
  try {
    const response = await request(url, { dispatcher, headers: options.token ? { authorization: `Bearer ${options.token}` } : {} })
    return { status: response.statusCode, headers: response.headers, text: await response.body.text() }
  } finally {
    await dispatcher.close()
  }
}
