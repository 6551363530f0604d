// The read-through client of bench/rebalance.ts: GETs through the router at a fixed offered rate
// with fixed concurrency on keep-alive HTTP; a miss reads the simulated database and SETs the value.
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { HOST, sleep } from '../lib.ts'
import { percentile } from '../router/measure.ts'

const LATE_MS = 10

export interface WorkloadOptions {
  port: number
  /** Key indices in request order (cycled when the run outlasts it). */
  stream: Int32Array
  keyName: (i: number) => string
  value: Buffer
  /** Offered GETs per second; Infinity runs closed-loop (as fast as concurrency allows). */
  rate: number
  concurrency: number
  /** How long a database read takes. */
  fillMs: number
  /** Asked after each request once started; true ends the run. */
  done: (elapsedMs: number) => boolean
}

/** One second of the run: the requests sent in it. */
export interface Second {
  requests: number
  hits: number
  /** Misses, each one database read and one SET. */
  misses: number
  errors: number
  /** Requests sent more than LATE_MS after they were due: the client fell behind the offered rate. */
  late: number
  /** GET latencies (ms), from sending the request to its response. */
  latencies: number[]
}

export interface WorkloadResult {
  /** performance.now() when request 0 was due: second n covers [start + n s, start + n + 1 s). */
  startedAt: number
  seconds: Second[]
  /** Every miss: when it was sent (ms since startedAt) and its key index. */
  misses: Array<{ at: number; key: number }>
  /** The first error's description, if any. */
  firstError: string | null
  /** Errors by kind: "GET HTTP 503 queue_full", "POST timeout", … */
  errorKinds: Record<string, number>
}

/** Runs the workload; returns once options.done says so and every request in flight has finished. */
export async function runReadThrough(options: WorkloadOptions, startedAt = performance.now()): Promise<WorkloadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency })
  const seconds: Second[] = []
  const misses: WorkloadResult['misses'] = []
  let firstError: string | null = null
  const errorKinds: Record<string, number> = {}
  let next = 0
  let stopped = false
  const secondOf = (at: number) => {
    const index = Math.max(0, Math.floor((at - startedAt) / 1000))
    while (seconds.length <= index) seconds.push({ requests: 0, hits: 0, misses: 0, errors: 0, late: 0, latencies: [] })
    return seconds[index]
  }
  const worker = async () => {
    while (!stopped) {
      const i = next++
      const dueAt = startedAt + (i * 1000) / options.rate
      const wait = dueAt - performance.now()
      if (wait > 0) await sleep(wait)
      if (options.done(performance.now() - startedAt)) {
        stopped = true
        return
      }
      const keyIndex = options.stream[i % options.stream.length]
      const key = options.keyName(keyIndex)
      const sentAt = performance.now()
      const second = secondOf(sentAt)
      second.requests++
      if (sentAt - dueAt > LATE_MS) second.late++
      try {
        const read = await request(agent, options.port, 'GET', key)
        second.latencies.push(performance.now() - sentAt)
        if (read.status === 200) {
          second.hits++
        } else if (read.status === 404) {
          second.misses++
          misses.push({ at: sentAt - startedAt, key: keyIndex })
          await sleep(options.fillMs)
          const write = await request(agent, options.port, 'POST', key, options.value)
          if (write.error) throw new Error(write.error)
        } else {
          throw new Error(read.error)
        }
      } catch (error) {
        second.errors++
        const message = (error as Error).message
        firstError ??= message
        const kind = errorKind(message)
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1
      }
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  agent.destroy()
  return { startedAt, seconds, misses, firstError, errorKinds }
}

/** Sends one request; resolves with its status, and for an unexpected one (not 2xx or 404) the start of its body. */
function request(agent: http.Agent, port: number, method: 'GET' | 'POST', key: string, body?: Buffer): Promise<{ status: number; error?: string }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { accept: 'application/octet-stream' }
    if (body) {
      headers['content-type'] = 'application/octet-stream'
      headers['content-length'] = body.length
    }
    const req = http.request({ host: HOST, port, method, path: `/${key}`, agent, headers }, (response) => {
      const status = response.statusCode ?? 0
      if ((status >= 200 && status < 300) || status === 404) {
        response.resume()
        response.on('end', () => resolve({ status }))
      } else {
        let text = ''
        response.on('data', (chunk: Buffer) => {
          text = (text + chunk.toString('utf8')).slice(0, 300)
        })
        response.on('end', () => resolve({ status, error: `${method} /${key}: HTTP ${status} ${text}` }))
      }
      response.on('error', reject)
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} /${key}: no response within 10 s`)))
    req.on('error', reject)
    req.end(body)
  })
}

/** "GET /key:1: HTTP 503 {…"code":"queue_full"…}" → "GET HTTP 503 queue_full"; other errors by their text without the key. */
function errorKind(message: string): string {
  const http = /^(\w+) \/\S+: HTTP (\d+) .*?"code":"([^"]+)"/.exec(message)
  if (http) return `${http[1]} HTTP ${http[2]} ${http[3]}`
  return message.replace(/\/key:\d+/, '/<key>').slice(0, 80)
}

/** Hit ratio of a second (0..1); NaN when it had no requests. */
export function hitRatio(second: Second): number {
  return second.hits / (second.hits + second.misses)
}

/** The q-quantile of the GET latencies of seconds [from, to). */
export function latencyQuantile(seconds: Second[], from: number, to: number, q: number): number {
  const all: number[] = []
  for (const second of seconds.slice(from, to)) for (const latency of second.latencies) all.push(latency)
  return percentile(Float64Array.from(all).sort(), q)
}
