// Loading and checking the benchmark's keys over loopback HTTP for bench/router-http.ts: the
// router's batch API, one-key POSTs (through HAProxy or to a shard's /keys), and sampled reads.
import http from 'node:http'
import { HOST } from '../lib.ts'

export const KEY_COUNT = 10_000
export const VALUE_BYTES = 100

export function keyName(i: number): string {
  return `key:${i}`
}

/** A 100-byte string value, different per key. */
export function valueFor(i: number): string {
  return `v${i}-`.padEnd(VALUE_BYTES, 'x')
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 })

export function httpRequest(port: number, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    const request = http.request({ host: HOST, port, method, path, headers, agent }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
      response.on('error', reject)
    })
    request.setTimeout(10_000, () => request.destroy(new Error(`${method} ${path}: timeout`)))
    request.on('error', reject)
    request.end(body)
  })
}

/** Writes every key through the router's POST /-/batch, 1000 sets per batch; keyPrefix goes before each key (a tenant's namespace). */
export async function loadThroughRouter(port: number, keyPrefix = ''): Promise<void> {
  for (let start = 0; start < KEY_COUNT; start += 1000) {
    const ops = []
    for (let i = start; i < Math.min(KEY_COUNT, start + 1000); i++) ops.push({ op: 'set', key: `${keyPrefix}${keyName(i)}`, value: valueFor(i) })
    const reply = await httpRequest(port, 'POST', '/-/batch', JSON.stringify({ ops }))
    if (reply.status !== 200) throw new Error(`router batch: HTTP ${reply.status} ${reply.body.slice(0, 300)}`)
    const { results } = JSON.parse(reply.body) as { results: Array<{ stored?: boolean }> }
    const failed = results.findIndex((result) => result.stored !== true)
    if (results.length !== ops.length || failed >= 0) throw new Error(`router batch: op ${failed} not stored: ${JSON.stringify(results[failed])}`)
  }
}

/** Writes every key with POST /keys/key:N (HAProxy routes each to its shard; a shard stores all). */
export async function loadThroughKeysApi(port: number, concurrency = 32): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < KEY_COUNT) {
      const i = next++
      const reply = await httpRequest(port, 'POST', `/keys/${keyName(i)}`, JSON.stringify({ value: valueFor(i) }))
      if (reply.status !== 200) throw new Error(`POST /keys/${keyName(i)} on port ${port}: HTTP ${reply.status} ${reply.body.slice(0, 300)}`)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

/** Reads `samples` keys spread over the key space at `pathPrefix` + key and checks each value. */
export async function checkReads(port: number, pathPrefix: string, samples: number): Promise<void> {
  for (let n = 0; n < samples; n++) {
    const i = Math.floor((n * KEY_COUNT) / samples)
    const reply = await httpRequest(port, 'GET', `${pathPrefix}${keyName(i)}`)
    const value = reply.status === 200 ? (JSON.parse(reply.body) as { value?: unknown }).value : undefined
    if (value !== valueFor(i)) throw new Error(`GET ${pathPrefix}${keyName(i)} on port ${port}: HTTP ${reply.status} ${reply.body.slice(0, 200)}`)
  }
}

export function closeAgent(): void {
  agent.destroy()
}
