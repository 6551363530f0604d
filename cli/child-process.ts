// Runs a shardline subcommand as a child process with its output lines prefixed by a name,
// and waits for the line that says it is ready.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('./shardline.ts', import.meta.url))

export interface Child {
  name: string
  process: ChildProcess
  /** The first output line matching the ready pattern. */
  ready: Promise<RegExpExecArray>
  exited: Promise<[number | null, NodeJS.Signals | null]>
}

export function startChild(name: string, args: string[], readyLine: RegExp, env: NodeJS.ProcessEnv): Child {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const ready = new Promise<RegExpExecArray>((resolve, reject) => {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        process.stdout.write(`[${name}] ${line}\n`)
        const match = readyLine.exec(line)
        if (match) resolve(match)
      })
    }
    void exited.then(([code, signal]) => reject(new Error(`${name} exited (${signal ?? code}) before it was ready`)))
  })
  ready.catch(() => {})
  return { name, process: child, ready, exited }
}
