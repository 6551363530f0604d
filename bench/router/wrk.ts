// One wrk run for the router benchmarks: random-key GETs (or a 90/10 mix) against a router, HAProxy or a
// shard, with the counts wrk reports (req/s, requests, non-2xx, socket errors).
import { fileURLToPath } from 'node:url'
import { HOST } from '../lib.ts'
import { KEY_COUNT } from './keys.ts'
import { runTool } from './processes.ts'

export const GET_SCRIPT = fileURLToPath(new URL('./get-random.lua', import.meta.url))
export const MIXED_SCRIPT = fileURLToPath(new URL('./mixed.lua', import.meta.url))

export interface WrkLoad {
  threads: number
  connections: number
  seconds: number
  /** The Lua script, and the arguments after its path prefix and key count. */
  script: string
  scriptArgs?: string[]
  /** The base URL when not plain HTTP on loopback (https://…); port is then ignored. */
  url?: string
  /** Extra request headers ("Name: value"). */
  headers?: string[]
}

export interface WrkCounts {
  rps: number
  requests: number
  non2xx: number
  socketErrors: number
}

/** Runs wrk against port (or load.url), keys at `prefix` + N (/key: for the router, /keys/key: for the shards' API). */
export async function runWrk(name: string, port: number, prefix: string, load: WrkLoad): Promise<WrkCounts> {
  const headers = (load.headers ?? []).flatMap((header) => ['-H', header])
  const args = [`-t${load.threads}`, `-c${load.connections}`, `-d${load.seconds}s`, '--timeout', '2s', ...headers, '-s', load.script, load.url ?? `http://${HOST}:${port}`, '--', prefix, String(KEY_COUNT), ...(load.scriptArgs ?? [])]
  const output = await runTool(`wrk ${name}`, '/usr/bin/wrk', args, (load.seconds + 30) * 1000)
  const rps = output.match(/Requests\/sec:\s+([\d.]+)/)
  const requests = output.match(/(\d+) requests in /)
  if (!rps || !requests) throw new Error(`could not parse wrk output for ${name}:\n${output}`)
  const non2xx = Number(output.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0)
  const socket = output.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/)
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0
  return { rps: Number(rps[1]), requests: Number(requests[1]), non2xx, socketErrors }
}
