// Hostile clients against real shard and router processes, this checkout beside an earlier one
// (--before <checkout>): each attack's peak RSS, an unrelated client's slowest GET, survival.
//
//   git worktree add /tmp/before <rev> && ln -s "$PWD/node_modules" /tmp/before/node_modules
//   npx node bench/hostile-clients.ts --before /tmp/before
import http from 'node:http'
import { mkdtempSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { codeVersion, formatTable, HOST, killProcess, loadAverage, readPeakRss, RespClient, runMain, sleep, startShard, stopServer, type RunningServer } from './lib.ts'
import { startRouter, type RunningRouter } from './router/processes.ts'

const MiB = 2 ** 20
/** How long each attack holds its pressure before the figures are read. */
const HOLD_MS = 3000
/** A probe GET slower than this counts as not answered. */
const PROBE_TIMEOUT_MS = 2000

interface Outcome {
  peakMb: number
  slowestProbeMs: number
  survived: boolean
  note: string
}

interface Attack {
  name: string
  target: 'shard' | 'router'
  run(ctx: { shard: RunningServer; router?: RunningRouter }): Promise<string>
}

const attacks: Attack[] = [
  { name: '200 pipelined GETs of 1 MiB, 1 client not reading', target: 'shard', run: ({ shard }) => pipelinedGets(shard.port, 1, ['GET', 'big'], 200) },
  { name: 'the same from 8 clients', target: 'shard', run: ({ shard }) => pipelinedGets(shard.port, 8, ['GET', 'big'], 200) },
  { name: 'MGET of 200 x 1 MiB, not reading', target: 'shard', run: ({ shard }) => pipelinedGets(shard.port, 1, ['MGET', ...Array<string>(200).fill('big')], 1) },
  { name: 'unfinished multi-bulk of 300 x 1 MiB', target: 'shard', run: ({ shard }) => unfinishedMultiBulk(shard.port, 300) },
  { name: '5,000 idle connections', target: 'shard', run: ({ shard }) => idleConnections(shard.port, 5000) },
  { name: '2 batches of 1,000 GETs of 1 MiB', target: 'router', run: ({ router }) => batchAmplification(router!.dataPort, 2) },
  { name: '19,000 idle connections', target: 'router', run: ({ router }) => idleConnections(router!.dataPort, 19_000, router!.adminPort) },
]

runMain(async () => {
  const { values } = parseArgs({ options: { before: { type: 'string' } } })
  const mine = fileURLToPath(new URL('../cli/shardline.ts', import.meta.url))
  const trees = [...(values.before ? [{ label: 'before', cli: join(resolve(values.before), 'cli/shardline.ts') }] : []), { label: 'after', cli: mine }]
  console.log(`code: ${codeVersion()}${values.before ? `, before: ${values.before}` : ''}; load average ${loadAverage()}`)
  const rows: Array<Array<string | number>> = []
  for (const attack of attacks) {
    const outcomes = []
    for (const tree of trees) outcomes.push(await measure(attack, tree.cli))
    rows.push([attack.name, attack.target, ...outcomes.flatMap((o) => [o.survived ? o.peakMb : `${o.peakMb} (died)`, o.slowestProbeMs, o.note])])
  }
  const headers = ['attack', 'target', ...trees.flatMap((t) => [`${t.label} peak RSS MB`, `${t.label} slowest GET ms`, `${t.label} attacker saw`])]
  console.log(formatTable(headers, rows))
  console.log(`load average after: ${loadAverage()}; shards run with --max-memory 64mb (bound 224 MB), the router's bound is 512 MB`)
})

// Fresh processes per attack, so VmHWM is that attack's peak. A router is started only when it is
// the target (it sits in front of the shard holding the 1 MiB value).
async function measure(attack: Attack, cli: string): Promise<Outcome> {
  const shard = await startShard({ cli, maxMemory: '64mb', name: 'hostile' })
  const router = attack.target === 'router' ? await startRouter(mkdtempSync(join(tmpdir(), 'shardline-hostile-')), [{ name: 's0', port: shard.port, adminPort: 0 }], cli) : undefined
  try {
    const setup = await RespClient.connect(shard.port)
    await setup.command('SET', 'big', Buffer.alloc(MiB, 'x'))
    await setup.command('SET', 'small', 'v')
    setup.close()
    const pid = attack.target === 'shard' ? shard.pid : router!.pid
    const probe = attack.target === 'shard' ? startProbe(() => respGet(shard.port)) : startProbe(() => httpGet(router!.dataPort, '/small'))
    let note: string
    try {
      note = await attack.run({ shard, router })
    } catch (error) {
      note = `error: ${(error as Error).message.slice(0, 60)}`
    }
    const slowest = await probe.stop()
    const alive = (attack.target === 'shard' ? shard.proc : router!.proc).child.exitCode === null
    return { peakMb: alive ? Math.round(readPeakRss(pid) / MiB) : NaN, slowestProbeMs: slowest, survived: alive, note }
  } finally {
    if (router) await killProcess(router.proc)
    await stopServer(shard)
  }
}

// An unrelated client asking for a small key every 20 ms: the slowest answer is the figure.
function startProbe(get: () => Promise<void>): { stop(): Promise<number> } {
  let slowest = 0
  let running = true
  const loop = (async () => {
    while (running) {
      const started = performance.now()
      await Promise.race([get().catch(() => sleep(PROBE_TIMEOUT_MS)), sleep(PROBE_TIMEOUT_MS)])
      slowest = Math.max(slowest, performance.now() - started)
      await sleep(20)
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      return Math.round(slowest)
    },
  }
}

let probeClient: { port: number; client: Promise<RespClient> } | null = null
async function respGet(port: number): Promise<void> {
  if (probeClient?.port !== port) probeClient = { port, client: RespClient.connect(port) }
  await (await probeClient.client).command('GET', 'small')
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 })
function httpGet(port: number, path: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    http.get({ host: HOST, port, path, agent: keepAlive }, (response) => {
      response.resume()
      response.on('end', () => (response.statusCode === 200 ? resolvePromise() : reject(new Error(`status ${response.statusCode}`))))
    }).on('error', reject)
  })
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolvePromise, reject) => {
    const socket = net.connect({ host: HOST, port })
    socket.once('connect', () => resolvePromise(socket))
    socket.once('error', reject)
  })
}

function command(args: string[]): string {
  return `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`
}

// Clients that pipeline commands with big replies in one write and never read them.
async function pipelinedGets(port: number, clients: number, args: string[], times: number): Promise<string> {
  const sockets = await Promise.all(Array.from({ length: clients }, () => connect(port)))
  let closedByServer = 0
  for (const socket of sockets) {
    socket.pause()
    socket.on('error', () => {})
    socket.on('close', () => closedByServer++)
    socket.write(command(args).repeat(times))
  }
  await sleep(HOLD_MS)
  for (const socket of sockets) socket.destroy()
  return `${closedByServer}/${clients} closed by the server`
}

// A multi-bulk header promising `count` values of 1 MiB, all sent but the last.
async function unfinishedMultiBulk(port: number, count: number): Promise<string> {
  const socket = await connect(port)
  let closed = false
  let sentMb = 0
  socket.on('error', () => {})
  const closing = new Promise((r) => socket.once('close', r)).then(() => (closed = true))
  socket.write(`*${count + 1}\r\n$4\r\nMSET\r\n`)
  const value = Buffer.concat([Buffer.from(`$${MiB}\r\n`), Buffer.alloc(MiB, 'y'), Buffer.from('\r\n')])
  for (let i = 0; i < count - 1 && !closed; i++) {
    if (!socket.write(value)) await Promise.race([new Promise((r) => socket.once('drain', r)), closing])
    sentMb++
  }
  await sleep(HOLD_MS)
  socket.destroy()
  return closed ? `closed by the server after ${sentMb} MiB` : `all ${sentMb} MiB sent, connection still open`
}

// Many connections that send nothing; afterwards, can a new client (and the admin port) get in?
async function idleConnections(port: number, count: number, adminPort?: number): Promise<string> {
  const sockets: net.Socket[] = []
  let refused = 0
  let closedByServer = 0
  for (let i = 0; i < count; i += 500) {
    const batch = await Promise.allSettled(Array.from({ length: Math.min(500, count - i) }, () => connect(port)))
    for (const result of batch) {
      if (result.status === 'rejected') refused++
      else {
        result.value.on('error', () => {})
        result.value.on('close', () => closedByServer++)
        sockets.push(result.value)
      }
    }
  }
  await sleep(HOLD_MS)
  const adminAnswered = adminPort === undefined ? 'n/a' : await httpGet(adminPort, '/healthz').then(() => 'yes', () => 'no')
  for (const socket of sockets) socket.destroy()
  return `${sockets.length - closedByServer} held, ${closedByServer} shed, ${refused} refused; admin answered: ${adminAnswered}`
}

// Small requests whose responses are huge: a batch of GETs of one 1 MiB value, from several clients.
async function batchAmplification(port: number, clients: number): Promise<string> {
  const body = JSON.stringify({ ops: Array.from({ length: 1000 }, () => ({ op: 'get', key: 'big' })) })
  const statuses = await Promise.all(Array.from({ length: clients }, () => new Promise<string>((resolvePromise) => {
    const request = http.request({ host: HOST, port, path: '/-/batch', method: 'POST', headers: { 'content-type': 'application/json' }, timeout: 30_000 }, (response) => {
      let bytes = 0
      response.on('data', (chunk: Buffer) => (bytes += chunk.length))
      response.on('end', () => resolvePromise(`${response.statusCode} (${Math.round(bytes / MiB)} MiB)`))
    })
    request.on('timeout', () => request.destroy(new Error('timeout')))
    request.on('error', (error) => resolvePromise(error.message))
    request.end(body)
  })))
  return statuses.join(', ')
}
