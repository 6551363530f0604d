// Measuring helpers for bench/router-http.ts that bench/lib.ts lacks: percentiles, I/O syscall counts, run-queue waits,
// whole-machine CPU from /proc/stat, and the CPU of this process's exited (reaped) children.
import { readFileSync } from 'node:fs'

/** The q-quantile (0..1) of an ascending list, nearest rank; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]
}

/** Jiffies since boot, all CPUs: busy (everything but idle and iowait) and total. */
export function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number)
  const total = fields.reduce((sum, value) => sum + value, 0)
  const idle = fields[3] + fields[4]
  return { busy: total - idle, total }
}

/**
 * CPU seconds (user + system) of this process's children that have exited and been waited for
 * (cutime + cstime in /proc/self/stat): the delta across one load-generator run is its CPU.
 */
export function reapedChildrenCpuSeconds(clockTicks: number): number {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // After ") ", field 3 (state) is index 0: cutime and cstime (fields 16 and 17) are indexes 13 and 14.
  return (Number(fields[13]) + Number(fields[14])) / clockTicks
}

/** Read-like plus write-like system calls a process has made so far (syscr + syscw in /proc/<pid>/io, all threads). */
export function ioSyscalls(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8')
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? NaN)
  return field('syscr') + field('syscw')
}

/**
 * A process's main thread from /proc/<pid>/schedstat: seconds it has run on a CPU and seconds it
 * has been runnable but waiting for one (time lost to CPU contention, not to waiting on I/O).
 */
export function mainThreadSchedule(pid: number): { running: number; waiting: number } {
  const [running, waiting] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number)
  return { running: running / 1e9, waiting: waiting / 1e9 }
}
