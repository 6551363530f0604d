// What both fuzz properties share: the seed and run counts (overridable from the environment), a
// runner whose failure shows the seed, the steps and the last response, liveness, and possible worlds.
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { INT64_MAX, INT64_MIN } from '../../common/limits.ts'
import { waitFor } from '../helpers/processes.ts'

/** Fixed so that `npm test` is repeatable; SHARDLINE_FUZZ_SEED explores others. */
const DEFAULT_SEED = 20260406

export interface FuzzSettings {
  seed: number
  /** Runs for a property whose default is `runs`: SHARDLINE_FUZZ_RUNS replaces every default. */
  runs(defaultRuns: number): number
}

export function fuzzSettings(env: NodeJS.ProcessEnv = process.env): FuzzSettings {
  const seed = integerFromEnv(env, 'SHARDLINE_FUZZ_SEED') ?? DEFAULT_SEED
  const runs = integerFromEnv(env, 'SHARDLINE_FUZZ_RUNS')
  return { seed, runs: (defaultRuns) => runs ?? defaultRuns }
}

function integerFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name]
  if (text === undefined || text === '') return undefined
  const value = Number(text)
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be an integer, not ${JSON.stringify(text)}`)
  return value
}

/** Gives an op a short name in fast-check's counterexample (its values can be megabytes). */
export function labelled<T extends object>(op: T, label: string): T & { label: string } {
  return Object.assign(op, { label, [fc.toStringMethod]: () => label })
}

/** undefined `absent` times in `present + absent`, else a value. */
export function maybe<T>(arbitrary: fc.Arbitrary<T>, present: number, absent: number): fc.Arbitrary<T | undefined> {
  return fc.oneof({ arbitrary: fc.constant(undefined), weight: absent }, { arbitrary, weight: present })
}

class FuzzFailure extends Error {}

/** The steps of one run with what each answered, so that a failure reads as a transcript. */
export class RunLog {
  private readonly steps: string[] = []
  private readonly header: string

  constructor(header: string) {
    this.header = header
  }

  record(step: string, response: string): void {
    this.steps.push(`${this.steps.length + 1}. ${step}\n   -> ${truncate(response, 400)}`)
  }

  fail(problem: string): never {
    throw new FuzzFailure(`${problem}\n${this.header}\nsteps of this run (the last one failed):\n${this.steps.join('\n')}`)
  }
}

/**
 * Runs ops sequences against real processes. No shrinking: a failed run can leave a process dead
 * or its state changed, so a shrunk sequence would fail for reasons the original did not show.
 */
export async function checkRuns<Op>(settings: FuzzSettings, property: string, defaultRuns: number, ops: fc.Arbitrary<Op[]>, run: (ops: Op[], log: RunLog) => Promise<void>): Promise<void> {
  const numRuns = settings.runs(defaultRuns)
  let index = 0
  await fc.assert(
    fc.asyncProperty(ops, async (sequence) => {
      index++
      const replay = `property "${property}", run ${index} of ${numRuns}; replay with SHARDLINE_FUZZ_SEED=${settings.seed} SHARDLINE_FUZZ_RUNS=${numRuns}`
      await run(sequence, new RunLog(replay))
    }),
    { seed: settings.seed, numRuns, endOnFailure: true },
  )
}

export interface Supervised {
  name: string
  child: { exitCode: number | null; signalCode: NodeJS.Signals | null }
  output(): string
}

/** Fails the run when any process has exited, showing the end of what it printed (its stack). */
export function checkAlive(processes: Supervised[], log: RunLog): void {
  for (const process of processes) {
    if (process.child.exitCode === null && process.child.signalCode === null) continue
    const tail = process.output().trimEnd().split('\n').slice(-20).join('\n')
    log.fail(`${process.name} exited (code ${process.child.exitCode}, signal ${process.child.signalCode}); its last output:\n${tail}`)
  }
}

/**
 * After a lost connection or a 5xx: gives a crashed process a moment to be seen exiting, so the
 * failure names it and shows its stack rather than only the symptom.
 */
export async function checkAliveAfterLoss(processes: Supervised[], log: RunLog): Promise<void> {
  const exited = () => processes.some((process) => process.child.exitCode !== null || process.child.signalCode !== null)
  await waitFor(exited, 2000).catch(() => {})
  checkAlive(processes, log)
}

/** One answer a world allows to a step, and the world it leaves. */
export interface Outcome<World, Reply> {
  expected: string
  accepts(reply: Reply): boolean
  next: World
}

/**
 * A model that may not know everything (a TTL that may have run out, a version race, a number
 * whose reading differs between Redis and us): the set of worlds still consistent with every
 * answer seen. A step keeps the worlds that allow its answer; none left is a disagreement.
 */
export class PossibleWorlds<World> {
  private worlds: World[]
  private readonly fingerprint: (world: World) => string
  private readonly limit: number

  constructor(initial: World, fingerprint: (world: World) => string, limit = 256) {
    this.worlds = [initial]
    this.fingerprint = fingerprint
    this.limit = limit
  }

  get current(): readonly World[] {
    return this.worlds
  }

  reset(world: World): void {
    this.worlds = [world]
  }

  /** Advances on reply; returns null, or what the worlds expected instead (for the failure message). */
  advance<Reply>(reply: Reply, outcomes: (world: World) => Outcome<World, Reply>[]): string[] | null {
    const all = this.worlds.flatMap(outcomes)
    const kept = new Map<string, World>()
    for (const outcome of all) {
      if (!outcome.accepts(reply)) continue
      kept.set(this.fingerprint(outcome.next), outcome.next)
    }
    if (kept.size === 0) return [...new Set(all.map((outcome) => outcome.expected))]
    if (kept.size > this.limit) throw new Error(`the model holds ${kept.size} possible worlds, more than ${this.limit}: generate fewer uncertain steps`)
    this.worlds = [...kept.values()]
    return null
  }
}

/** Every way of making one binary choice per item: [] gives [[]], two items give four lists. */
export function choices<T, C>(items: readonly T[], options: (item: T) => readonly C[]): C[][] {
  let all: C[][] = [[]]
  for (const item of items) all = all.flatMap((prefix) => options(item).map((choice) => [...prefix, choice]))
  return all
}

const digests = new WeakMap<Buffer, string>()

/** A short stable name for a value's bytes, for world fingerprints (values reach a mebibyte). */
export function bytesDigest(bytes: Buffer): string {
  let digest = digests.get(bytes)
  if (digest === undefined) {
    digest = `${bytes.length}:${createHash('sha1').update(bytes).digest('hex').slice(0, 16)}`
    digests.set(bytes, digest)
  }
  return digest
}

/** A value as a failure message shows it: short ones as they are, long ones by size and start. */
export function describeBytes(bytes: Buffer): string {
  const text = JSON.stringify(bytes.subarray(0, 40).toString('latin1'))
  return bytes.length <= 40 ? text : `<${bytes.length} bytes ${text}…>`
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} chars)`
}

/** Redis's reading of an integer argument or value (string2ll): no sign but '-', no leading zeros. */
export function strictInt64(text: string): bigint | null {
  if (!/^(0|-?[1-9]\d{0,18})$/.test(text)) return null
  const value = BigInt(text)
  return value >= INT64_MIN && value <= INT64_MAX ? value : null
}

/**
 * Digits that Redis refuses but a laxer reader could take ("007", "-0"): the model allows either
 * reading for these. Nothing past int64 is an integer to either.
 */
export function laxInteger(text: string): bigint | null {
  if (!/^-?\d{1,40}$/.test(text)) return null
  const value = BigInt(text)
  return value >= INT64_MIN && value <= INT64_MAX ? value : null
}
