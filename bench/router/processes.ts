// Process helpers for bench/router-http.ts on top of bench/lib.ts: a router over given shards,
// HAProxy (one thread) in front of the shards' admin HTTP, and tools run to completion.
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { HOST, killProcess, REPO_ROOT, sleep, spawnTracked, waitForOutput, type TrackedProcess } from '../lib.ts'

const SHARDLINE_CLI = fileURLToPath(new URL('../../cli/shardline.ts', import.meta.url))

export interface Backend {
  name: string
  /** RESP port (for the router). */
  port: number
  /** Admin HTTP port (for HAProxy and direct /keys requests). */
  adminPort: number
}

/** A second router beside the first: its config file's name, and top-level YAML lines added to its config (tenants, tls). */
export interface RouterExtras {
  name?: string
  config?: string[]
}

export interface RunningRouter {
  proc: TrackedProcess
  pid: number
  dataPort: number
  adminPort: number
}

/**
 * Writes a router config over the shards (one pool, default settings, one process) and starts it;
 * `cli` runs another checkout's router, to compare code versions side by side; `nodeArgs` go to
 * node before the script (--cpu-prof, --trace-gc).
 */
export async function startRouter(dir: string, shards: Backend[], cli = SHARDLINE_CLI, nodeArgs: string[] = [], extra: RouterExtras = {}): Promise<RunningRouter> {
  const file = join(dir, `${extra.name ?? 'router'}.yaml`)
  const lines = [
    'listen:',
    `  data: ${HOST}:0`,
    `  admin: ${HOST}:0`,
    // One process, like HAProxy's single thread below.
    'workers: 1',
    'pools:',
    '  main:',
    '    shards:',
    ...shards.flatMap((shard) => [`      - name: ${shard.name}`, `        primary: ${HOST}:${shard.port}`]),
    ...(extra.config ?? []),
  ]
  writeFileSync(file, `${lines.join('\n')}\n`)
  const proc = spawnTracked('router', process.execPath, [...nodeArgs, cli, 'router', '--config', file], {
    cwd: REPO_ROOT,
    env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn' },
  })
  const match = await waitForOutput(proc, /shardline router ready: https?:\/\/([\d.]+):(\d+) admin https?:\/\/([\d.]+):(\d+)(.*)/, 30_000)
  if (match[5].trim() !== '') throw new Error(`expected a single router process, got: ${match[0]}`)
  if (proc.child.pid === undefined) throw new Error('router has no pid')
  return { proc, pid: proc.child.pid, dataPort: Number(match[2]), adminPort: Number(match[4]) }
}

export interface RunningHaproxy {
  proc: TrackedProcess
  pid: number
  port: number
  config: string
}

/**
 * HAProxy config: one thread, HTTP mode, `balance uri` with consistent hashing over the shards' admin ports, no logging;
 * with tlsPem (certificate and key in one file) it terminates TLS on its port.
 */
export function haproxyConfig(port: number, shards: Backend[], tlsPem?: string): string {
  return [
    'global',
    '    nbthread 1',
    '    maxconn 4096',
    '',
    'defaults',
    '    mode http',
    '    no log',
    '    option http-keep-alive',
    '    timeout connect 2s',
    '    timeout client 30s',
    '    timeout server 30s',
    '    timeout http-request 10s',
    '    timeout http-keep-alive 30s',
    '',
    'frontend bench',
    `    bind ${HOST}:${port}${tlsPem ? ` ssl crt ${tlsPem}` : ''}`,
    '    default_backend shards',
    '',
    'backend shards',
    '    balance uri',
    '    hash-type consistent',
    ...shards.map((shard) => `    server ${shard.name} ${HOST}:${shard.adminPort}`),
    '',
  ].join('\n')
}

export async function startHaproxy(dir: string, port: number, shards: Backend[], tlsPem?: string): Promise<RunningHaproxy> {
  const file = join(dir, tlsPem ? 'haproxy-tls.cfg' : 'haproxy.cfg')
  const config = haproxyConfig(port, shards, tlsPem)
  writeFileSync(file, config)
  await runTool('haproxy -c', '/usr/sbin/haproxy', ['-c', '-q', '-f', file], 15_000)
  // -db: stay in the foreground, no master/worker: one process, so its pid is the one doing the work.
  const proc = spawnTracked('haproxy', '/usr/sbin/haproxy', ['-db', '-f', file])
  await waitForPort(proc, port, 15_000)
  if (proc.child.pid === undefined) throw new Error('haproxy has no pid')
  return { proc, pid: proc.child.pid, port, config }
}


export async function waitForPort(proc: TrackedProcess, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`${proc.name} exited early:\n${proc.output()}`)
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: HOST, port })
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (open) return
    await sleep(50)
  }
  throw new Error(`${proc.name}: port ${port} not accepting within ${timeoutMs} ms:\n${proc.output()}`)
}

/**
 * Runs a tool to completion and returns its stdout (tracked: killed on timeout or when the
 * benchmark ends). Waits for 'close', not 'exit', so the last of stdout has been read.
 */
export async function runTool(name: string, command: string, args: string[], timeoutMs: number): Promise<string> {
  const proc = spawnTracked(name, command, args, { cwd: REPO_ROOT })
  let stdout = ''
  proc.child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8')
  })
  const closed = new Promise<void>((resolve) => proc.child.once('close', () => resolve()))
  const timer = setTimeout(() => void killProcess(proc, 1000), timeoutMs)
  const { code, signal } = await proc.exited
  await Promise.race([closed, sleep(2000)])
  clearTimeout(timer)
  if (code !== 0) throw new Error(`${name} failed (code ${code}, signal ${signal}):\n${proc.output()}`)
  return stdout
}
