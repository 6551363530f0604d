// Child process for bench/router-http.ts: an open-loop GET load at an even fixed rate (request i is
// due at i/rate s, on 32 keep-alive connections); latency counts from when a request was due.
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { percentile } from './measure.ts'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    prefix: { type: 'string' },
    keys: { type: 'string', default: '10000' },
    rate: { type: 'string' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
  },
  strict: true,
})
if (!values.port || !values.prefix || !values.rate) throw new Error('usage: paced-get.ts --port N --prefix /key: --rate N [--keys N --duration s --connections N]')
const HOST = '127.0.0.1'
const port = Number(values.port)
const prefix = values.prefix
const keys = Number(values.keys)
const rate = Number(values.rate)
const durationMs = Number(values.duration) * 1000
const total = Math.floor((rate * durationMs) / 1000)

const HEADER_END = Buffer.from('\r\n\r\n')
/** From when each request was due (open loop: includes waiting for a free connection). */
const dueLatencies = new Float64Array(total)
/** From when each request was written. */
const sentLatencies = new Float64Array(total)
let completed = 0
let non2xx = 0
let errors = 0

class Connection {
  private readonly socket: net.Socket
  private buffer: Buffer = Buffer.alloc(0)
  private due = 0
  private sent = 0
  busy = false

  constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', () => {
      errors++
    })
    socket.on('close', () => {
      if (this.busy) errors++
      this.busy = true // never reused
    })
  }

  send(due: number): void {
    this.busy = true
    this.due = due
    this.sent = performance.now()
    this.socket.write(`GET ${prefix}${Math.floor(Math.random() * keys)} HTTP/1.1\r\nHost: ${HOST}:${port}\r\n\r\n`)
  }

  close(): void {
    this.socket.destroy()
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    const headerEnd = this.buffer.indexOf(HEADER_END)
    if (headerEnd < 0) return
    const head = this.buffer.toString('latin1', 0, headerEnd)
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
    if (!length) throw new Error(`response without content-length:\n${head}`)
    const end = headerEnd + 4 + Number(length[1])
    if (this.buffer.length < end) return
    this.buffer = this.buffer.subarray(end)
    const now = performance.now()
    const status = Number(head.slice(9, 12))
    if (status < 200 || status > 299) non2xx++
    dueLatencies[completed] = now - this.due
    sentLatencies[completed] = now - this.sent
    completed++
    this.busy = false
    dispatch(this)
  }
}

function connect(): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port, noDelay: true })
    socket.once('connect', () => {
      socket.off('error', reject)
      resolve(new Connection(socket))
    })
    socket.once('error', reject)
  })
}

const connections = await Promise.all(Array.from({ length: Number(values.connections) }, () => connect()))
const idle: Connection[] = [...connections]
/** Due times of requests that found no idle connection, oldest first. */
const backlog: number[] = []
let backlogHead = 0
let issued = 0
const started = performance.now()

function dispatch(freed: Connection): void {
  if (backlogHead < backlog.length) freed.send(backlog[backlogHead++])
  else idle.push(freed)
}

// Every millisecond (or as close as timers get), issue the requests that have come due since.
const ticker = setInterval(() => {
  const now = performance.now()
  const due = Math.min(total, Math.floor(((now - started) * rate) / 1000))
  while (issued < due) {
    const dueAt = started + (issued * 1000) / rate
    issued++
    const connection = idle.pop()
    if (connection) connection.send(dueAt)
    else backlog.push(dueAt)
  }
  if (issued >= total) clearInterval(ticker)
}, 1)

const deadline = started + durationMs + 5000
await new Promise<void>((resolve) => {
  const check = setInterval(() => {
    if (completed >= total || performance.now() > deadline || errors > 0) {
      clearInterval(check)
      resolve()
    }
  }, 20)
})
clearInterval(ticker)
const elapsed = (performance.now() - started) / 1000
for (const connection of connections) connection.close()
const due = dueLatencies.subarray(0, completed).sort()
const sent = sentLatencies.subarray(0, completed).sort()
console.log(JSON.stringify({
  rps: completed / elapsed,
  total: completed,
  expected: total,
  non2xx,
  errors,
  p50: percentile(due, 0.5),
  p99: percentile(due, 0.99),
  p999: percentile(due, 0.999),
  max: due[due.length - 1] ?? NaN,
  sentP50: percentile(sent, 0.5),
  sentP99: percentile(sent, 0.99),
}))
