// The four ways bench/client.ts reaches a cache, behind one interface: (a) plain undici, one HTTP request
// per op, (b) the client in HTTP mode, (c) the client in direct mode, (d) ioredis with auto-pipelining.
import { Redis } from 'ioredis'
import { Pool } from 'undici'
import { createClient } from '../../client/index.ts'
import type { ShardlineClient } from '../../client/types.ts'
import { HOST } from '../lib.ts'

export type ContenderId = 'a' | 'b' | 'c' | 'd'

export interface Contender {
  id: ContenderId
  label: string
  /** The server processes its ops cost CPU in (router and shards, the shards alone, or redis-server). */
  serverPids: number[]
  get(key: string): Promise<unknown>
  set(key: string, value: string): Promise<unknown>
  close(): Promise<void>
}

/** What every contender is given, so the comparison is of how ops travel, not of settings. */
export interface ContenderSettings {
  /** Keep-alive HTTP connections to the router, for (a) and (b). */
  connections: number
  /** Any op slower than this fails (counted as an error), so a stuck op cannot hang a run. */
  opTimeoutMs: number
}

/** (a): what a service writes today with undici alone: a keep-alive pool, one request per op, JSON bodies. */
export function plainUndici(routerUrl: string, serverPids: number[], settings: ContenderSettings): Contender {
  const pool = new Pool(routerUrl, { connections: settings.connections, headersTimeout: settings.opTimeoutMs, bodyTimeout: settings.opTimeoutMs })
  return {
    id: 'a',
    label: '(a) undici, 1 request/op',
    serverPids,
    async get(key) {
      const { statusCode, body } = await pool.request({ method: 'GET', path: `/${encodeURIComponent(key)}` })
      if (statusCode === 404) {
        await body.dump()
        return null
      }
      if (statusCode !== 200) throw new Error(`GET ${key}: HTTP ${statusCode} ${await body.text()}`)
      return ((await body.json()) as { value: unknown }).value
    },
    async set(key, value) {
      const { statusCode, body } = await pool.request({
        method: 'POST',
        path: `/${encodeURIComponent(key)}`,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ value }),
      })
      if (statusCode !== 200) throw new Error(`POST ${key}: HTTP ${statusCode} ${await body.text()}`)
      return ((await body.json()) as { stored: boolean }).stored
    },
    close: () => pool.close(),
  }
}

function shardlineContender(id: 'b' | 'c', label: string, client: ShardlineClient, serverPids: number[]): Contender {
  return {
    id,
    label,
    serverPids,
    get: (key) => client.get(key),
    set: (key, value) => client.set(key, value),
    close: () => client.close(),
  }
}

/** (b): the client through the router. */
export function clientHttpMode(routerUrl: string, serverPids: number[], settings: ContenderSettings): Contender {
  const client = createClient({ url: routerUrl, connections: settings.connections, timeoutMs: settings.opTimeoutMs })
  return shardlineContender('b', '(b) client, HTTP mode', client, serverPids)
}

/** (c): the client hashing keys itself and speaking RESP to the shards, topology from the router's admin port. */
export function clientDirectMode(adminUrl: string, shardPids: number[], settings: ContenderSettings): Contender {
  const client = createClient({ topology: { adminUrl }, timeoutMs: settings.opTimeoutMs })
  return shardlineContender('c', '(c) client, direct mode', client, shardPids)
}

/** (d), the reference: ioredis batching each turn's commands into one write, against one redis-server. */
export function ioredisAutoPipelining(port: number, redisPid: number, settings: ContenderSettings): Contender {
  const redis = new Redis({ host: HOST, port, enableAutoPipelining: true, commandTimeout: settings.opTimeoutMs, maxRetriesPerRequest: 0 })
  // A lost connection already fails the ops in flight, which the loop counts: no need for ioredis's "Unhandled error event" too.
  redis.on('error', () => {})
  return {
    id: 'd',
    label: '(d) ioredis auto-pipelining, redis-server',
    serverPids: [redisPid],
    get: (key) => redis.get(key),
    set: (key, value) => redis.set(key, value),
    async close() {
      await redis.quit()
    },
  }
}
