// Shared benchmark helpers: free ports, tracked child processes (always killed, also on error
// or signal), starting a shard / redis-server / memcached / nutcracker on 127.0.0.1, small RESP and memcached clients.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RespReplyParser, type RespReply } from '../common/resp-reply-parser.ts'
import { RespWriter } from '../common/resp-writer.ts'

export const HOST = '127.0.0.1'
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))
const SHARDLINE_CLI = fileURLToPath(new URL('../cli/shardline.ts', import.meta.url))

// ---------------------------------------------------------------- processes

export interface TrackedProcess {
  name: string
  child: ChildProcess
  /** Last few kilobytes of stdout + stderr, for error messages. */
  output(): string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const tracked = new Set<TrackedProcess>()
let cleanupInstalled = false

function installCleanup(): void {
  if (cleanupInstalled) return
  cleanupInstalled = true
  // Last resort: whatever is still running when this process exits is killed outright.
  process.on('exit', () => {
    for (const proc of tracked) {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL')
    }
  })
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping benchmark processes`)
    void killAll().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
}

/** Spawns a child that is killed when the benchmark ends, however it ends. Output is always drained. */
export function spawnTracked(name: string, command: string, args: string[], options: SpawnOptions = {}): TrackedProcess {
  installCleanup()
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
  let tail = ''
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-8192)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
    child.once('error', () => resolve({ code: -1, signal: null }))
  })
  const proc: TrackedProcess = { name, child, output: () => tail, exited }
  tracked.add(proc)
  void exited.then(() => tracked.delete(proc))
  return proc
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
export async function killProcess(proc: TrackedProcess, graceMs = 5000): Promise<void> {
  const { child } = proc
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    tracked.delete(proc)
    return
  }
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await proc.exited
  clearTimeout(timer)
  tracked.delete(proc)
}

export async function killAll(): Promise<void> {
  await Promise.all([...tracked].map((proc) => killProcess(proc, 3000)))
}

/** Runs a benchmark's main function; on any outcome every tracked process is killed. */
export function runMain(main: () => Promise<void>): void {
  installCleanup()
  main()
    .catch((error: unknown) => {
      console.error(error)
      process.exitCode = 1
    })
    .finally(() => killAll())
}

/** Runs a command to completion (tracked, so it dies with the benchmark); rejects on non-zero exit or timeout. */
export async function runCommand(name: string, command: string, args: string[], timeoutMs: number): Promise<string> {
  const proc = spawnTracked(name, command, args)
  let stdout = ''
  proc.child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8')
  })
  const timer = setTimeout(() => void killProcess(proc, 1000), timeoutMs)
  const { code, signal } = await proc.exited
  clearTimeout(timer)
  if (code !== 0) throw new Error(`${name} failed (code ${code}, signal ${signal}):\n${proc.output()}`)
  return stdout
}

// ---------------------------------------------------------------- ports and servers

/** A port that was free a moment ago: bind port 0 on loopback, read it, close. */
export async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, HOST, () => resolve())
  })
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export interface RunningServer {
  kind: 'shard' | 'redis' | 'memcached' | 'router' | 'nutcracker'
  proc: TrackedProcess
  port: number
  /** The pid whose memory is the server's (for the shard, INFO's process_id). */
  pid: number
  adminUrl?: string
}

export interface ShardOptions {
  /** The shardline CLI to run: another checkout's, to compare code versions side by side. */
  cli?: string
  maxMemory?: string
  policy?: 'lru' | 'fifo' | 'lfu'
  name?: string
  /** A shard config file (--config): auth, tls. With tls its INFO is not read (the pid is the process's own). */
  config?: { file: string; tls: boolean }
}

/** Starts `shardline shard` with ports 0 and waits for its "ready" line. */
export async function startShard(options: ShardOptions = {}): Promise<RunningServer> {
  const name = options.name ?? 'bench'
  const args = [options.cli ?? SHARDLINE_CLI, 'shard', '--port', '0', '--admin-port', '0', '--max-memory', options.maxMemory ?? '64mb', '--policy', options.policy ?? 'lru', '--name', name, ...(options.config ? ['--config', options.config.file] : [])]
  // process.execPath is the pinned node 24 that runs this script (npx node), so the child's pid is
  // the shard's own (its re-exec with a heap limit keeps the pid).
  const proc = spawnTracked(`shard ${name}`, process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn' } })
  const ready = new RegExp(`shardline shard ${name} ready: resp ([\\d.]+):(\\d+) admin (https?://\\S+)`)
  const match = await waitForOutput(proc, ready, 30_000)
  const port = Number(match[2])
  // The shard re-executes itself with a heap limit (execve keeps the pid).
  if (options.config?.tls) return { kind: 'shard', proc, port, pid: proc.child.pid!, adminUrl: match[3] }
  const client = await RespClient.connect(port)
  try {
    const info = parseInfo(await client.commandText('INFO', 'server'))
    return { kind: 'shard', proc, port, pid: Number(info.process_id), adminUrl: match[3] }
  } finally {
    client.close()
  }
}

export interface BenchmarkRun {
  rps: number
  /** Server CPU time (user + system, all threads) per request, in microseconds. */
  cpuMicros: number
}

export interface BenchmarkLoad {
  requests: number
  clients: number
  valueBytes: number
  /** redis-benchmark -r: keys drawn at random from this many. */
  keyspace: number
  pipeline: number
  timeoutMs: number
}

/** One redis-benchmark run of one test (`-t`; extraArgs such as --tls --cacert f); returns its requests per second and the server's CPU per request. */
export async function redisBenchmark(server: RunningServer, test: string, load: BenchmarkLoad, extraArgs: string[] = []): Promise<BenchmarkRun> {
  const args = ['-h', HOST, '-p', String(server.port), '-t', test.toLowerCase(), '-n', String(load.requests), '-c', String(load.clients), '-d', String(load.valueBytes), '-r', String(load.keyspace), '-P', String(load.pipeline), '--csv', ...extraArgs]
  const cpuBefore = cpuSeconds(server.pid)
  const csv = await runCommand(`redis-benchmark ${server.kind}`, '/usr/bin/redis-benchmark', args, load.timeoutMs)
  const cpu = cpuSeconds(server.pid) - cpuBefore
  const match = csv.match(new RegExp(`^"${test.toUpperCase()}","([\\d.]+)"`, 'm'))
  if (!match) throw new Error(`could not parse redis-benchmark output against ${server.kind}:\n${csv}`)
  return { rps: Number(match[1]), cpuMicros: (cpu / load.requests) * 1e6 }
}

/** redis-server with no persistence, on loopback; extraArgs are appended to its command line. */
export async function startRedis(extraArgs: string[] = []): Promise<RunningServer> {
  const port = await freePort()
  const proc = spawnTracked('redis-server', '/usr/bin/redis-server', [
    '--bind', HOST, '--port', String(port), '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--daemonize', 'no', '--logfile', '',
    ...extraArgs,
  ])
  await waitForPort(proc, port, 15_000)
  const client = await RespClient.connect(port)
  try {
    const info = parseInfo(await client.commandText('INFO', 'server'))
    return { kind: 'redis', proc, port, pid: Number(info.process_id) }
  } finally {
    client.close()
  }
}

export async function startMemcached(memoryMb: number): Promise<RunningServer> {
  const port = await freePort()
  const proc = spawnTracked('memcached', '/usr/bin/memcached', ['-l', HOST, '-p', String(port), '-U', '0', '-m', String(memoryMb), '-t', '2', '-u', 'nobody'])
  await waitForPort(proc, port, 15_000)
  if (proc.child.pid === undefined) throw new Error('memcached has no pid')
  return { kind: 'memcached', proc, port, pid: proc.child.pid }
}

/**
 * nutcracker (twemproxy) in front of redis-servers: one pool, ketama over fnv1a_64, hosts never
 * ejected, its config in dir; listens on a free port, with its stats port on another.
 */
export async function startNutcracker(dir: string, servers: RunningServer[]): Promise<RunningServer> {
  const port = await freePort()
  const file = join(dir, 'nutcracker.yml')
  writeFileSync(file, [
    'bench:',
    `  listen: ${HOST}:${port}`,
    '  hash: fnv1a_64',
    '  distribution: ketama',
    '  redis: true',
    '  auto_eject_hosts: false',
    '  server_connections: 1',
    '  servers:',
    ...servers.map((server, i) => `    - ${HOST}:${server.port}:1 r${i}`),
    '',
  ].join('\n'))
  await runCommand('nutcracker -t', '/usr/sbin/nutcracker', ['-t', '-c', file], 15_000)
  const proc = spawnTracked('nutcracker', '/usr/sbin/nutcracker', ['-c', file, '-s', String(await freePort()), '-a', HOST, '-o', join(dir, 'nutcracker.log'), '-p', join(dir, 'nutcracker.pid')])
  await waitForPort(proc, port, 15_000)
  if (proc.child.pid === undefined) throw new Error('nutcracker has no pid')
  return { kind: 'nutcracker', proc, port, pid: proc.child.pid }
}

export async function stopServer(server: RunningServer): Promise<void> {
  await killProcess(server.proc)
}

/** Resolves with the first match of pattern in the process's stdout; rejects on timeout or exit. */
export function waitForOutput(proc: TrackedProcess, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = ''
    const onData = (chunk: Buffer) => {
      seen = (seen + chunk.toString('utf8')).slice(-16384)
      const match = seen.match(pattern)
      if (match) finish(null, match)
    }
    const timer = setTimeout(() => finish(new Error(`${proc.name}: no ready line within ${timeoutMs} ms:\n${proc.output()}`)), timeoutMs)
    const finish = (error: Error | null, match?: RegExpMatchArray) => {
      clearTimeout(timer)
      proc.child.stdout?.off('data', onData)
      if (error) reject(error)
      else resolve(match!)
    }
    proc.child.stdout?.on('data', onData)
    void proc.exited.then(({ code, signal }) => finish(new Error(`${proc.name} exited early (code ${code}, signal ${signal}):\n${proc.output()}`)))
  })
}

async function waitForPort(proc: TrackedProcess, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let attempt = 0; attempt < 300; attempt++) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`${proc.name} exited early:\n${proc.output()}`)
    try {
      const socket = await connect(port)
      socket.destroy()
      return
    } catch {
      if (Date.now() > deadline) break
      await sleep(50)
    }
  }
  throw new Error(`${proc.name}: port ${port} not accepting within ${timeoutMs} ms:\n${proc.output()}`)
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port, noDelay: true })
    socket.once('connect', () => {
      socket.off('error', reject)
      resolve(socket)
    })
    socket.once('error', reject)
  })
}

// ---------------------------------------------------------------- clients

export type { RespReply }

const CRLF = Buffer.from('\r\n')

/** A minimal RESP2 client for loopback benchmarks on the product's own codec: pipelined commands, replies in order. */
export class RespClient {
  private readonly socket: net.Socket
  private readonly parser = new RespReplyParser()
  private readonly writer = new RespWriter()
  private readonly waiting: Array<(reply: RespReply) => void> = []
  private failure: Error | null = null

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => this.parser.push(chunk, (reply) => this.waiting.shift()?.(reply)))
    socket.on('error', (error) => this.fail(error))
    socket.on('close', () => this.fail(new Error('connection closed')))
  }

  static async connect(port: number): Promise<RespClient> {
    return new RespClient(await connect(port))
  }

  /** Sends every command in one write and resolves with their replies, in order. */
  pipeline(commands: Array<Array<string | Buffer>>): Promise<RespReply[]> {
    if (this.failure) return Promise.reject(this.failure)
    const replies = commands.map(() => new Promise<RespReply>((resolve) => this.waiting.push(resolve)))
    for (const args of commands) {
      this.writer.arrayHeader(args.length)
      for (const arg of args) this.writer.bulk(typeof arg === 'string' ? Buffer.from(arg, 'latin1') : arg)
    }
    this.writer.writeTo(this.socket)
    return Promise.all(replies).then((all) => {
      if (this.failure) throw this.failure
      return all
    })
  }

  async command(...args: Array<string | Buffer>): Promise<RespReply> {
    const [reply] = await this.pipeline([args])
    if (reply instanceof Error) throw reply
    return reply
  }

  async commandText(...args: Array<string | Buffer>): Promise<string> {
    const reply = await this.command(...args)
    return Buffer.isBuffer(reply) ? reply.toString('utf8') : String(reply)
  }

  close(): void {
    this.socket.destroy()
  }

  private fail(error: Error): void {
    if (this.failure) return
    this.failure = error
    for (const resolve of this.waiting.splice(0)) resolve(error as RespReply)
  }
}

/** INFO text to a field map. */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon > 0 && !line.startsWith('#')) fields[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return fields
}

/** A minimal memcached text-protocol client: pipelined `set`s with checked replies, and `stats`. */
export class MemcachedClient {
  private readonly socket: net.Socket
  private text = ''
  private waiter: (() => void) | null = null
  private failure: Error | null = null

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('latin1')
      this.waiter?.()
    })
    socket.on('error', (error) => this.fail(error))
    socket.on('close', () => this.fail(new Error('connection closed')))
  }

  static async connect(port: number): Promise<MemcachedClient> {
    return new MemcachedClient(await connect(port))
  }

  /** Stores every item in one write; throws unless each reply is STORED. */
  async setMany(items: Array<[string, Buffer]>): Promise<void> {
    const parts: Buffer[] = []
    for (const [key, value] of items) parts.push(Buffer.from(`set ${key} 0 0 ${value.length}\r\n`, 'latin1'), value, CRLF)
    this.socket.write(Buffer.concat(parts))
    const expected = 'STORED\r\n'.repeat(items.length)
    await this.readUntil(() => this.text.length >= expected.length || /ERROR/.test(this.text))
    const got = this.text.slice(0, expected.length)
    this.text = this.text.slice(expected.length)
    if (got !== expected) throw new Error(`memcached set failed: ${JSON.stringify(got.slice(0, 200))}`)
  }

  async stats(): Promise<Record<string, string>> {
    this.socket.write('stats\r\n')
    await this.readUntil(() => this.text.includes('END\r\n'))
    const end = this.text.indexOf('END\r\n')
    const body = this.text.slice(0, end)
    this.text = this.text.slice(end + 5)
    const stats: Record<string, string> = {}
    for (const line of body.split('\r\n')) {
      const [tag, name, value] = line.split(' ')
      if (tag === 'STAT') stats[name] = value
    }
    return stats
  }

  close(): void {
    this.socket.destroy()
  }

  private fail(error: Error): void {
    this.failure ??= error
    this.waiter?.()
  }

  private readUntil(done: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (done()) {
          this.waiter = null
          resolve()
        } else if (this.failure) {
          this.waiter = null
          reject(this.failure)
        }
      }
      this.waiter = check
      check()
    })
  }
}

// ---------------------------------------------------------------- measuring and reporting

/** VmRSS of a process, in bytes. */
export function readRss(pid: number): number {
  return readStatusBytes(pid, 'VmRSS')
}

/** VmHWM of a process (its peak RSS so far), in bytes. */
export function readPeakRss(pid: number): number {
  return readStatusBytes(pid, 'VmHWM')
}

function readStatusBytes(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)
  if (!match) throw new Error(`no ${field} for pid ${pid}`)
  return Number(match[1]) * 1024
}

let clockTicks = 0

/** CPU time (user + system, all threads) a process has used so far, in seconds, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  if (clockTicks === 0) clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 10_000 }).trim()) || 100
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may contain spaces) start at ") ": utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / clockTicks
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** The folders whose code a benchmark measures (bench/ and test/ are not the product). */
const PRODUCT_FOLDERS = ['shard', 'common', 'cli', 'router', 'client', 'rebalance']

/** The code under test: git HEAD plus the files under PRODUCT_FOLDERS that differ from it. */
export function codeVersion(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 })
    const head = git('rev-parse', '--short', 'HEAD').trim()
    // Porcelain lines are "XY path": two status letters and a space before the path.
    const dirty = git('status', '--porcelain', '--', ...PRODUCT_FOLDERS).split('\n').filter(Boolean).map((line) => line.slice(3))
    return dirty.length === 0 ? head : `${head} + uncommitted changes in ${dirty.join(', ')}`
  } catch {
    return 'unknown (git unavailable)'
  }
}

/** The 1-minute load average: on a 2-core machine, much above 2 during a timing run means someone else was busy too. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0])
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A Markdown table (it reads fine on a terminal too). */
export function formatTable(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((row) => row.map(String))]
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => row[column].length)))
  const line = (row: string[]) => `| ${row.map((cell, column) => cell.padEnd(widths[column])).join(' | ')} |`
  return [line(cells[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n')
}

/** What a PacedWriter writes: SETs of valueBytes-byte values over keyspace keys named keyPrefix + index. */
export interface PacedWrites {
  keyPrefix: string
  keyspace: number
  valueBytes: number
}

/** SETs at a fixed rate: every ~1 ms, the writes due since start() go out in one pipeline (not awaited). */
export class PacedWriter {
  sent = 0
  acked = 0
  errors = 0
  private readonly client: RespClient
  private readonly rate: number
  private readonly writes: PacedWrites
  private readonly value: Buffer
  private startedAt = 0
  private timer: NodeJS.Timeout | null = null
  private outstanding = 0
  private stopped = false

  constructor(client: RespClient, rate: number, writes: PacedWrites) {
    this.client = client
    this.rate = rate
    this.writes = writes
    this.value = Buffer.alloc(writes.valueBytes, 'v')
  }

  start(): void {
    this.startedAt = performance.now()
    this.tick()
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    while (this.outstanding > 0) await sleep(5)
  }

  private tick(): void {
    if (this.stopped) return
    const due = Math.floor(((performance.now() - this.startedAt) * this.rate) / 1000) - this.sent
    // A stalled server does not get an unbounded burst: the achieved rate shows the shortfall.
    const count = this.outstanding > 20_000 ? 0 : Math.min(due, 2000)
    if (count > 0) {
      const commands: Array<Array<string | Buffer>> = []
      for (let i = 0; i < count; i++) commands.push(['SET', `${this.writes.keyPrefix}${(this.sent + i) % this.writes.keyspace}`, this.value])
      this.sent += count
      this.outstanding += count
      void this.client.pipeline(commands).then(
        (replies) => this.replied(replies),
        () => this.replied(commands.map(() => new Error('failed'))),
      )
    }
    this.timer = setTimeout(() => this.tick(), 1)
  }

  private replied(replies: RespReply[]): void {
    this.outstanding -= replies.length
    for (const reply of replies) {
      if (reply === 'OK') this.acked++
      else this.errors++
    }
  }
}
