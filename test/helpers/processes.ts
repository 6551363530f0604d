// Starts real shardline processes (shards, routers) for end-to-end tests: reads their addresses
// from the ready line they print, and kills them when the test ends (tap's teardown).
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../../cli/shardline.ts', import.meta.url))

export interface Teardown {
  teardown(fn: () => unknown): void
}

export interface ShardProcess {
  child: ChildProcess
  pid: number
  port: number
  adminPort: number
  adminUrl: string
  /** Everything the process printed so far (stdout and stderr). */
  output(): string
  /** Sends a signal and waits for the exit; resolves with the exit code and signal. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/**
 * How long a process has to print its ready line. Most start in under a second; on two cores
 * running the fault tests side by side, a start has been seen to take over 15 s.
 */
export const START_TIMEOUT_MS = 30_000

export const SHARD_READY = /shardline shard \S+ ready: resp [\d.]+:(\d+) admin (https?:\/\/[\d.]+:(\d+))/
const ROUTER_READY = /shardline router ready: (https?:\/\/[\d.]+:(\d+)) admin (https?:\/\/[\d.]+:(\d+))/

export interface RouterProcess extends Omit<ShardProcess, 'port' | 'adminPort' | 'adminUrl'> {
  url: string
  adminUrl: string
}

export async function startShardProcess(t: Teardown, args: string[] = [], timeoutMs = START_TIMEOUT_MS): Promise<ShardProcess> {
  const { match, ...process } = await startProcess(t, ['shard', '--port', '0', '--admin-port', '0', ...args], SHARD_READY, timeoutMs)
  return { ...process, port: Number(match[1]), adminUrl: match[2], adminPort: Number(match[3]) }
}

export async function startRouterProcess(t: Teardown, configFile: string, timeoutMs = START_TIMEOUT_MS): Promise<RouterProcess> {
  const { match, ...process } = await startProcess(t, ['router', '--config', configFile], ROUTER_READY, timeoutMs)
  return { ...process, url: match[1], adminUrl: match[3] }
}

async function startProcess(t: Teardown, args: string[], ready: RegExp, timeoutMs: number) {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, SHARDLINE_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] })
  return superviseProcess(t, child, ready, args[0], timeoutMs)
}

// Should a test file die before its teardowns run (a failed top-level await), the processes it
// started die with it rather than linger.
const startedProcesses = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of startedProcesses) child.kill('SIGKILL')
})

/** How long a process has to exit on SIGTERM at the end of a test before it is killed. */
const STOP_GRACE_MS = 5000

/**
 * Collects a started process's output, waits for its ready line, and stops it when the test ends:
 * SIGTERM first (after SIGCONT, should the test have left it stopped), so that it exits on its own
 * and writes its coverage; SIGKILL if it has not exited within STOP_GRACE_MS.
 */
export async function superviseProcess(t: Teardown, child: ChildProcess, ready: RegExp, name: string, timeoutMs: number) {
  let output = ''
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  const exited = once(child, 'exit')
  const running = () => child.exitCode === null && child.signalCode === null
  startedProcesses.add(child)
  void exited.then(() => startedProcesses.delete(child))
  t.teardown(async () => {
    if (!running()) return
    child.kill('SIGCONT')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
    await exited
    clearTimeout(timer)
  })
  let match: RegExpExecArray
  try {
    match = await waitFor(() => ready.exec(output), timeoutMs, () => `${name} did not print its ready line:\n${output}`)
  } catch (error) {
    // A process that did not start in time is not left to start later: it would hold the ports a
    // retry (or the next fault schedule's restart) needs.
    if (running()) child.kill('SIGKILL')
    await exited
    throw error
  }
  return {
    match,
    child,
    pid: child.pid!,
    output: () => output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const [code, exitSignal] = (await exited) as [number | null, NodeJS.Signals | null]
      return { code, signal: exitSignal }
    },
  }
}

/** Polls until check returns a value, or fails with describe() after timeoutMs. */
export async function waitFor<T>(check: () => T | null | undefined | false | Promise<T | null | undefined | false>, timeoutMs: number, describe: () => string = () => 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Runs a command to completion and returns its output (for redis-cli and friends). */
export async function run(command: string, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  child.stdin.end(input ?? '')
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

/**
 * A loopback port free right now. Replication needs it: a primary and its replica name each
 * other on their command lines, so their data ports are chosen before either starts.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Whether a process with this pid exists (one we may not signal counts as alive). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
