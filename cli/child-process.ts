// Runs a shardline subcommand as a supervised child process, as Kubernetes would run a pod: output
// lines prefixed by its name, a wait for its ready line, and a restart with backoff when it dies.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { extname } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Logger } from '../common/logger.ts'

// This file's own extension: .ts where the sources run, .js in the compiled package (dist/).
const CLI = fileURLToPath(new URL(`./shardline${extname(import.meta.url)}`, import.meta.url))

/** The first restart waits this long; each further one twice as long, up to RESTART_MAX_MS. */
const RESTART_INITIAL_MS = 250
const RESTART_MAX_MS = 10_000
/** A child that ran this long before dying is restarted at the initial delay again. */
const STABLE_RUN_MS = 30_000
/** Lines of a start's output kept for its failure: the error a process prints before exiting. */
const START_OUTPUT_LINES = 50

/** A start that exited before its ready line, with the last lines it printed (why, e.g. EADDRINUSE). */
export class ChildStartError extends Error {
  readonly output: string

  constructor(message: string, output: string) {
    super(message)
    this.output = output
  }
}

export interface ChildOptions {
  name: string
  args: string[]
  readyLine: RegExp
  env: NodeJS.ProcessEnv
  log: Logger
}

export class SupervisedChild {
  readonly name: string
  /** The ready line of the first start; rejects (ChildStartError) if the first start dies before it. */
  readonly ready: Promise<RegExpExecArray>
  /** The arguments a restart uses (the cluster pins ports the first start picked). */
  args: string[]
  restarts = 0
  private readonly options: ChildOptions
  private current: ChildProcess
  private exited: Promise<unknown>
  private stopping = false
  private restartDelayMs = RESTART_INITIAL_MS
  private restartTimer: NodeJS.Timeout | null = null

  constructor(options: ChildOptions) {
    this.options = options
    this.name = options.name
    this.args = options.args
    const first = this.spawn()
    this.current = first.child
    this.exited = first.exited
    this.ready = first.ready
    void this.ready.then(() => this.superviseFrom(first), () => {})
  }

  get pid(): number | undefined {
    return this.current.pid
  }

  /** Sends a signal to the running process (SIGKILL at a stop deadline). */
  kill(signal: NodeJS.Signals): void {
    this.current.kill(signal)
  }

  /** Stops the child for good: no restart follows; resolves once it has exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.stopping = true
    if (this.restartTimer) clearTimeout(this.restartTimer)
    if (this.current.exitCode === null && this.current.signalCode === null) this.current.kill(signal)
    await this.exited
  }

  private spawn() {
    const child = spawn(process.execPath, [CLI, ...this.args], { env: this.options.env, stdio: ['ignore', 'pipe', 'pipe'] })
    const startedAt = Date.now()
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    const ready = new Promise<RegExpExecArray>((resolve, reject) => {
      const output: string[] = []
      for (const stream of [child.stdout!, child.stderr!]) {
        createInterface({ input: stream }).on('line', (line) => {
          process.stdout.write(`[${this.name}] ${line}\n`)
          const match = this.options.readyLine.exec(line)
          if (match) resolve(match)
          else if (output.push(line) > START_OUTPUT_LINES) output.shift()
        })
      }
      // 'close' rather than 'exit': every line the child printed has been read by then.
      void once(child, 'close').then(([code, signal]) => reject(new ChildStartError(`${this.name} exited (${signal ?? code}) before it was ready`, output.join('\n'))))
    })
    ready.catch(() => {})
    return { child, startedAt, exited, ready }
  }

  // Once a start has been ready, its death is a crash to recover from, not a failed start.
  private superviseFrom(start: { startedAt: number; exited: Promise<[number | null, NodeJS.Signals | null]> }): void {
    void start.exited.then(([code, signal]) => {
      if (this.stopping) return
      if (Date.now() - start.startedAt >= STABLE_RUN_MS) this.restartDelayMs = RESTART_INITIAL_MS
      const delayMs = this.restartDelayMs
      this.restartDelayMs = Math.min(RESTART_MAX_MS, this.restartDelayMs * 2)
      this.restarts++
      this.options.log.warn({ child: this.name, code, signal, restarts: this.restarts, restartInMs: delayMs }, 'a cluster process exited unexpectedly; restarting it')
      this.restartTimer = setTimeout(() => this.restart(), delayMs)
    })
  }

  private restart(): void {
    this.restartTimer = null
    const next = this.spawn()
    this.current = next.child
    this.exited = next.exited
    // A restart that dies before it is ready is retried too, with the next delay.
    void next.ready.then(() => this.options.log.info({ child: this.name, restarts: this.restarts }, 'restarted cluster process is ready'), () => {})
    this.superviseFrom(next)
  }
}
