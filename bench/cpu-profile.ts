// A V8 .cpuprofile (node --cpu-prof) summarised as text for the benchmarks: self time per function
// and per file or package within a time window, the flame graph's widest leaves.
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
}

interface CpuProfile {
  nodes: ProfileNode[]
  /** Microseconds on the monotonic clock (process.hrtime's). */
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface SelfTime {
  name: string
  /** Microseconds sampled in it (not in what it called). */
  micros: number
}

export interface ProfileSummary {
  /** Sampled microseconds in the window, idle excluded. */
  busyMicros: number
  idleMicros: number
  byFunction: SelfTime[]
  byFile: SelfTime[]
}

/** Where code lives, short: a package, a node: module, or a path inside the repository. */
function whereFrom(url: string): string {
  if (url === '') return '(native or VM)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1]
  if (url.startsWith('node:')) return url
  const repo = /\/((?:router|common|shard|cli)\/.*)$/.exec(url)
  return repo ? repo[1] : url.replace(/^file:\/\//, '')
}

/**
 * Self time of every function and file, counting only samples taken between fromMicros and
 * toMicros (process.hrtime.bigint() / 1000n when the load started and ended), so start-up and
 * loading are left out.
 */
export function summariseProfile(file: string, fromMicros = 0, toMicros = Number.MAX_SAFE_INTEGER): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
  const byFunction = new Map<string, number>()
  const byFile = new Map<string, number>()
  let busyMicros = 0
  let idleMicros = 0
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i]
    // A sample's time is the interval up to the next one.
    const micros = profile.timeDeltas[i + 1] ?? 0
    if (at < fromMicros || at > toMicros) continue
    const { functionName, url, lineNumber } = nodes.get(profile.samples[i])!.callFrame
    if (functionName === '(idle)') {
      idleMicros += micros
      continue
    }
    busyMicros += micros
    const where = whereFrom(url)
    const name = url === '' ? functionName : `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros)
    byFile.set(where, (byFile.get(where) ?? 0) + micros)
  }
  const sorted = (totals: Map<string, number>) => [...totals].map(([name, micros]) => ({ name, micros })).sort((a, b) => b.micros - a.micros)
  return { busyMicros, idleMicros, byFunction: sorted(byFunction), byFile: sorted(byFile) }
}

/** The top functions of a summary as text: share of the busy time, milliseconds, function. */
export function formatTopFunctions(summary: ProfileSummary, count: number): string {
  return summary.byFunction
    .slice(0, count)
    .map(({ name, micros }) => `${((micros / summary.busyMicros) * 100).toFixed(1).padStart(5)}%  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${name}`)
    .join('\n')
}
