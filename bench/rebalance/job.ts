// The rebalance job as an operator runs it (`shardline rebalance --config <file>`), run to
// completion from the benchmark: its summary line parsed, its wall time and CPU measured.
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { cpuSeconds, killProcess, REPO_ROOT, spawnTracked } from '../lib.ts'

const SHARDLINE_CLI = fileURLToPath(new URL('../../cli/shardline.ts', import.meta.url))
const SUMMARY = /rebalance: scanned (\d+) keys, moved (\d+), skipped (\d+) as older, removed (\d+), failed (\d+) in ([\d.]+) s/

export interface JobResult {
  scanned: number
  moved: number
  skippedOlder: number
  removed: number
  failed: number
  /** The job's own duration, from its summary line. */
  seconds: number
  /** From the summary: moved / seconds. */
  movedPerSecond: number
  /** CPU seconds of the job process (last sample before it exited). */
  cpuSeconds: number
  summaryLine: string
}

/** Runs the job against configFile; rate: its --rate (keys/s), absent for the job's default. Rejects unless it exits 0 with a summary. */
export async function runRebalanceJob(configFile: string, rate: number | undefined, timeoutMs: number): Promise<JobResult> {
  const args = [SHARDLINE_CLI, 'rebalance', '--config', configFile, ...(rate === undefined ? [] : ['--rate', String(rate)])]
  const proc = spawnTracked('rebalance job', process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn' } })
  let stdout = ''
  proc.child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8')
  })
  // /proc/<pid>/stat is gone once the process has been reaped: sample it while it runs.
  let cpu = 0
  const pid = proc.child.pid
  const sampler = setInterval(() => {
    try {
      if (pid !== undefined) cpu = cpuSeconds(pid)
    } catch {
      // exited between samples
    }
  }, 200)
  const started = performance.now()
  const timer = setTimeout(() => void killProcess(proc, 1000), timeoutMs)
  const { code, signal } = await proc.exited
  clearTimeout(timer)
  clearInterval(sampler)
  const match = SUMMARY.exec(stdout) ?? SUMMARY.exec(proc.output())
  if (code !== 0 || !match) throw new Error(`rebalance job exited with code ${code} (signal ${signal}) after ${((performance.now() - started) / 1000).toFixed(1)} s:\n${proc.output()}`)
  const [summaryLine, scanned, moved, skippedOlder, removed, failed, seconds] = match
  return {
    scanned: Number(scanned),
    moved: Number(moved),
    skippedOlder: Number(skippedOlder),
    removed: Number(removed),
    failed: Number(failed),
    seconds: Number(seconds),
    movedPerSecond: Number(moved) / Number(seconds),
    cpuSeconds: cpu,
    summaryLine,
  }
}
