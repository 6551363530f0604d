// Child process for bench/router-http.ts: autocannon GETs of random keys at a fixed overall rate
// (-R / overallRate); prints one JSON line with autocannon's own percentiles and exact ones.
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { percentile } from './measure.ts'

interface AutocannonRequest {
  method?: string
  path?: string
  setupRequest?: (request: AutocannonRequest) => AutocannonRequest
}

interface AutocannonResult {
  requests: { total: number; average: number }
  latency: { p50: number; p99: number; average: number; max: number }
  errors: number
  timeouts: number
  non2xx: number
  duration: number
}

interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, statusCode: number, bytes: number, responseTimeMs: number) => void): void
  stop(): void
}

type Autocannon = (options: Record<string, unknown>, done: (error: Error | null, result: AutocannonResult) => void) => AutocannonInstance

// autocannon ships no type declarations: load it through require and describe what we use above.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    prefix: { type: 'string' },
    keys: { type: 'string', default: '10000' },
    rate: { type: 'string' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
  },
  strict: true,
})
if (!values.url || !values.prefix || !values.rate) throw new Error('usage: autocannon-get.ts --url http://127.0.0.1:PORT --prefix /key: --rate N [--keys N --duration s --connections N]')
const url = new URL(values.url)
if (url.hostname !== '127.0.0.1') throw new Error('loopback (127.0.0.1) only')
const prefix = values.prefix
const keys = Number(values.keys)

// Exact response times (autocannon's own histogram keeps whole milliseconds only).
const latencies: number[] = []
const instance = autocannon(
  {
    url: url.origin,
    connections: Number(values.connections),
    duration: Number(values.duration),
    overallRate: Number(values.rate),
    requests: [{
      method: 'GET',
      setupRequest: (request: AutocannonRequest) => {
        request.path = `${prefix}${Math.floor(Math.random() * keys)}`
        return request
      },
    }],
  },
  (error, result) => {
    if (error) throw error
    latencies.sort((a, b) => a - b)
    console.log(JSON.stringify({
      rps: result.requests.total / result.duration,
      total: result.requests.total,
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      autocannonP50: result.latency.p50,
      autocannonP99: result.latency.p99,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      p999: percentile(latencies, 0.999),
      max: latencies[latencies.length - 1] ?? NaN,
    }))
  },
)
instance.on('response', (_client, _statusCode, _bytes, responseTimeMs) => {
  latencies.push(responseTimeMs)
})
process.once('SIGTERM', () => instance.stop())
