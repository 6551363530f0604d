// Histories of what clients saw through routers under faults, and a checker over them: recording
// clients (writes, reads, deletes, increments, counter reads, each with its times and outcome) and checkHistory.
import { performance } from 'node:perf_hooks'

/** The one clock of every history: milliseconds, monotonic, shared by all clients of a test process. */
export const now = (): number => performance.now()

export type OpKind = 'write' | 'read' | 'delete' | 'incr' | 'counterRead'
/** ok: done as answered. failed: the API says it was not applied. unknown: it may or may not have been. */
export type Outcome = 'ok' | 'failed' | 'unknown'

export interface HistoryOp {
  client: string
  router: string
  kind: OpKind
  key: string
  /** A write's value, or what a read returned (null: the key was absent). */
  value?: string | null
  /** An increment's delta. */
  delta?: number
  /** A counter read's total, or the total an increment of a counter that is not hot answered. */
  total?: number
  invokedAt: number
  completedAt: number
  outcome: Outcome
  /** The HTTP status and code, or the client's error, when not ok. */
  detail: string
}

export interface RouterEndpoint {
  name: string
  url: string
}

// The README's error table: a 4xx refuses the request before anything is applied, and these 503s are
// answered before the command is written to any shard. outcome_unknown, 504, 502 (an unreadable reply
// may follow an applied command) and lost connections leave the outcome open.
const NOT_APPLIED_503 = new Set(['no_healthy_destination', 'overloaded', 'too_many_connections', 'shutting_down'])
/** Refused by the last destination tried: a write or delete may have been applied by one tried before it. */
const LAST_DESTINATION_503 = new Set(['shard_unavailable', 'queue_full'])

/**
 * What an answer says about whether the op was applied. shard_unavailable and queue_full differ by kind:
 * an increment that may have reached a shard is answered outcome_unknown instead, but a write or delete
 * fails over after its reply was lost, and the last destination's refusal hides that the first may have applied it.
 */
export function classify(kind: OpKind, status: number, code: string): Outcome {
  if (status >= 200 && status < 300) return 'ok'
  if (status === 404 && code === 'not_found' && kind === 'read') return 'ok'
  if (status >= 400 && status < 500) return 'failed'
  if (status === 503 && (NOT_APPLIED_503.has(code) || (LAST_DESTINATION_503.has(code) && kind === 'incr'))) return 'failed'
  return 'unknown'
}

/** Every op of a test run, in the order they were invoked. */
export class History {
  readonly ops: HistoryOp[] = []
}

/** A router that takes this long has lost the request: its own per-op timeout is far shorter. */
const REQUEST_TIMEOUT_MS = 3000
const JSON_HEADERS = { 'content-type': 'application/json' }

/**
 * One client of one router, recording every op into a history. Each write's value names the client and
 * a sequence number, unique in the history, so a read's value says which write it saw.
 */
export class RecordingClient {
  readonly name: string
  readonly router: RouterEndpoint
  private readonly history: History
  private seq = 0

  constructor(name: string, router: RouterEndpoint, history: History) {
    this.name = name
    this.router = router
    this.history = history
  }

  write(key: string): Promise<HistoryOp> {
    const value = `${this.name}#${++this.seq}`
    return this.request({ kind: 'write', key, value }, '', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ value }) }, () => {})
  }

  read(key: string): Promise<HistoryOp> {
    return this.request({ kind: 'read', key }, '', { method: 'GET' }, (op, status, body) => {
      op.value = status === 404 ? null : (body as { value: string }).value
    })
  }

  delete(key: string): Promise<HistoryOp> {
    return this.request({ kind: 'delete', key }, '', { method: 'DELETE' }, () => {})
  }

  incr(key: string): Promise<HistoryOp> {
    return this.request({ kind: 'incr', key, delta: 1 }, '/incr', { method: 'POST', headers: JSON_HEADERS, body: '{"by":1}' }, (op, _status, body) => {
      // A hot counter answers {"acknowledged": true}: its total is not known without reading every sub-counter.
      const total = (body as { value?: number }).value
      if (total !== undefined) op.total = total
    })
  }

  readCounter(key: string): Promise<HistoryOp> {
    return this.request({ kind: 'counterRead', key }, '/counter', { method: 'GET' }, (op, _status, body) => {
      op.total = (body as { value: number }).value
    })
  }

  private async request(fields: Pick<HistoryOp, 'kind' | 'key' | 'value' | 'delta'>, suffix: string, init: RequestInit, onOk: (op: HistoryOp, status: number, body: unknown) => void): Promise<HistoryOp> {
    const op: HistoryOp = { client: this.name, router: this.router.name, ...fields, invokedAt: now(), completedAt: 0, outcome: 'unknown', detail: '' }
    this.history.ops.push(op)
    try {
      const response = await fetch(`${this.router.url}/${encodeURIComponent(fields.key)}${suffix}`, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
      const text = await response.text()
      const body = JSON.parse(text) as { code?: string }
      op.outcome = classify(op.kind, response.status, body.code ?? '')
      if (op.outcome === 'ok') onOk(op, response.status, body)
      else op.detail = `${response.status} ${body.code ?? text.slice(0, 80)}`
    } catch (error) {
      op.detail = `error: ${(error as Error).message}`
    }
    op.completedAt = now()
    return op
  }
}

/** After an op that did not succeed: a loop of instant 503s would starve the shards of the CPU. */
const FAILURE_PAUSE_MS = 10

/** Runs step over and over, one at a time, at most once every paceMs, until stopped. */
export class ClientLoop {
  private running = true
  private readonly done: Promise<void>

  constructor(step: () => Promise<HistoryOp>, paceMs: number) {
    this.done = (async () => {
      while (this.running) {
        const op = await step()
        const pause = Math.max(op.outcome === 'ok' ? 0 : FAILURE_PAUSE_MS, op.invokedAt + paceMs - now())
        if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause))
      }
    })()
  }

  stop(): Promise<void> {
    this.running = false
    return this.done
  }
}

/**
 * Acknowledged ops a fault is allowed to hide: those acknowledged within lagMs before the fault began at
 * `at` (and invoked before it), which a primary may have taken without its replica having them yet.
 * Reads invoked before `until` may miss them (the README's failover caveat); when lost, they may be gone
 * for good (a kill -9 loses the lag window).
 */
export interface FaultWindow {
  at: number
  lagMs: number
  until: number
  lost: boolean
}

export interface FinalRead {
  key: string
  router: string
  /** A register's value (null: absent) or a counter's total. */
  value: string | null | number
}

export interface CheckOptions {
  /** The hot-key copy TTL: the staleness bound through a router other than the writer's. */
  copyTtlMs: number
  /** Reads of every key and counter after the faults healed and the clients stopped. */
  finalReads: FinalRead[]
  windows?: FaultWindow[]
  /** Groups keys for the staleness figures (hot, cold). */
  classOf?: (key: string) => string
}

export interface Violation {
  check: 'never-written' | 'final-value' | 'read-your-writes' | 'stale-read' | 'counter-total' | 'counter-read'
  key: string
  detail: string
  context: unknown
}

export interface CounterFigures {
  key: string
  acked: number
  unknown: number
  failed: number
  /** Acknowledged increments inside a window that lets them be lost (a kill -9's lag window). */
  mayBeLost: number
  final: number[]
  /** Acknowledged increments missing from the lowest final total (counting every unknown one as not applied). */
  lost: number
  /** The largest amount a counter read during the run was below what had been acknowledged before it started. */
  maxReadShortfall: number
}

export interface CheckVerdict {
  counts: Record<OpKind, Record<Outcome, number>>
  violationCount: number
  violationsByCheck: Partial<Record<Violation['check'], number>>
  /** The first 10, each with the ops that show it. */
  violations: Violation[]
  /** Per key class: the most stale read through the writing router and through another, in ms. */
  maxStalenessMs: Record<string, { sameRouter: number; otherRouter: number }>
  counters: CounterFigures[]
  /** Acknowledged writes and deletes inside a fault window (hidden from reads, or allowed to be lost). */
  windowed: number
}

const MAX_LISTED_VIOLATIONS = 10

/** Checks a history against the README's promises; see each check below for what it holds. */
export function checkHistory(history: History, options: CheckOptions): CheckVerdict {
  const verdict: CheckVerdict = {
    counts: Object.fromEntries((['write', 'read', 'delete', 'incr', 'counterRead'] as const).map((kind) => [kind, { ok: 0, failed: 0, unknown: 0 }])) as CheckVerdict['counts'],
    violationCount: 0,
    violationsByCheck: {},
    violations: [],
    maxStalenessMs: {},
    counters: [],
    windowed: 0,
  }
  const violate = (violation: Violation) => {
    verdict.violationCount++
    verdict.violationsByCheck[violation.check] = (verdict.violationsByCheck[violation.check] ?? 0) + 1
    if (verdict.violations.length < MAX_LISTED_VIOLATIONS) verdict.violations.push(violation)
  }
  const byKey = new Map<string, HistoryOp[]>()
  for (const op of history.ops) {
    verdict.counts[op.kind][op.outcome]++
    const ops = byKey.get(op.key)
    if (ops) ops.push(op)
    else byKey.set(op.key, [op])
  }
  const finals = new Map<string, FinalRead[]>()
  for (const read of options.finalReads) finals.set(read.key, [...(finals.get(read.key) ?? []), read])
  const context = { windows: options.windows ?? [], copyTtlMs: options.copyTtlMs, classOf: options.classOf ?? (() => 'all'), violate, verdict }
  for (const [key, ops] of byKey) {
    const keyFinals = finals.get(key)
    if (keyFinals === undefined) throw new Error(`checkHistory: no final read of ${key}; every key of the history needs one`)
    const isCounter = ops.some((op) => op.kind === 'incr' || op.kind === 'counterRead')
    if (isCounter) checkCounter(key, ops, keyFinals, context)
    else checkRegister(key, ops, keyFinals, context)
  }
  return verdict
}

interface CheckContext {
  windows: FaultWindow[]
  copyTtlMs: number
  classOf: (key: string) => string
  violate: (violation: Violation) => void
  verdict: CheckVerdict
}

const inWindow = (op: HistoryOp, window: FaultWindow) => op.outcome === 'ok' && op.invokedAt < window.at && op.completedAt >= window.at - window.lagMs
/** Whether op counts as acknowledged for a read invoked at readAt (Infinity: for the final state). */
function acknowledgedFor(op: HistoryOp, windows: FaultWindow[], readAt: number): boolean {
  return op.outcome === 'ok' && !windows.some((window) => inWindow(op, window) && (window.lost || readAt < window.until))
}
const brief = (op: HistoryOp) => `${op.kind} ${op.client}@${op.router} ${op.value === undefined ? '' : JSON.stringify(op.value)} ${op.outcome}${op.detail ? ` (${op.detail})` : ''} ${op.invokedAt.toFixed(1)}-${op.completedAt.toFixed(1)}`

/**
 * A register (writes, deletes and reads of one key). Its writes and deletes come from one client, so
 * their order is the client's: the router stamps each with a newer version than the one before.
 *  - never-written: a read shows a value that no write sent, one that failed, or one sent after the read ended;
 *  - final-value: the final state is the last acknowledged write or delete, or something after it that may have applied;
 *  - read-your-writes: a read through a router is no older than the last write acknowledged through it before the read began;
 *  - stale-read: through another router, at most copyTtlMs stale (how long before the read began the first
 *    acknowledged write or delete newer than what it returned was acknowledged).
 */
function checkRegister(key: string, ops: HistoryOp[], finals: FinalRead[], check: CheckContext): void {
  const mutations = ops.filter((op) => op.kind === 'write' || op.kind === 'delete')
  const writers = new Set(mutations.map((op) => op.client))
  if (writers.size > 1) throw new Error(`checkHistory: key ${key} is written by ${[...writers].join(', ')}; a register needs a single writer to order its writes`)
  check.verdict.windowed += mutations.filter((op) => check.windows.some((window) => inWindow(op, window))).length
  const reads = ops.filter((op) => op.kind === 'read' && op.outcome === 'ok')
  const keyClass = check.classOf(key)
  const staleness = (check.verdict.maxStalenessMs[keyClass] ??= { sameRouter: 0, otherRouter: 0 })

  /** The states (mutation index + 1; 0 before any) a shown value can be, given when it was read. */
  const statesOf = (shown: string | null, readDoneAt: number): number[] | string => {
    if (shown === null) return [0, ...mutations.flatMap((op, i) => (op.kind === 'delete' && op.outcome !== 'failed' && op.invokedAt < readDoneAt ? [i + 1] : []))]
    const index = mutations.findIndex((op) => op.kind === 'write' && op.value === shown)
    if (index < 0) return 'no write of this key sent this value'
    if (mutations[index].outcome === 'failed') return `the write that sent it failed (${mutations[index].detail})`
    if (mutations[index].invokedAt >= readDoneAt) return 'the write that sent it began after the read ended'
    return [index + 1]
  }

  for (const read of reads) {
    const states = statesOf(read.value!, read.completedAt)
    if (typeof states === 'string') {
      check.violate({ check: 'never-written', key, detail: `read ${JSON.stringify(read.value)}: ${states}`, context: brief(read) })
      continue
    }
    const shownState = Math.max(...states)
    const acknowledgedBefore = mutations.map((op, i) => ({ op, state: i + 1 })).filter(({ op }) => op.completedAt < read.invokedAt && acknowledgedFor(op, check.windows, read.invokedAt))
    const sameRouter = read.router === mutations[0]?.router
    const newer = acknowledgedBefore.filter(({ state }) => state > shownState)
    const stalenessMs = newer.length === 0 ? 0 : read.invokedAt - Math.min(...newer.map(({ op }) => op.completedAt))
    if (sameRouter) {
      staleness.sameRouter = Math.max(staleness.sameRouter, stalenessMs)
      if (newer.length > 0) check.violate({ check: 'read-your-writes', key, detail: `read through the writing router ${read.router} returned state ${shownState}, older than the write it acknowledged ${stalenessMs.toFixed(0)} ms before`, context: { read: brief(read), missed: newer.slice(0, 3).map(({ op }) => brief(op)) } })
    } else {
      staleness.otherRouter = Math.max(staleness.otherRouter, stalenessMs)
      if (stalenessMs > check.copyTtlMs) check.violate({ check: 'stale-read', key, detail: `read through ${read.router} was ${stalenessMs.toFixed(0)} ms stale (copyTtlMs ${check.copyTtlMs})`, context: { read: brief(read), shown: shownState === 0 ? 'nothing yet' : brief(mutations[shownState - 1]), missed: newer.slice(0, 3).map(({ op }) => brief(op)) } })
    }
  }

  const lastAcked = mutations.findLastIndex((op) => acknowledgedFor(op, check.windows, Infinity)) + 1
  for (const final of finals) {
    const states = statesOf(final.value as string | null, Infinity)
    const possible = typeof states === 'string' ? [] : states.filter((state) => state >= lastAcked)
    if (possible.length === 0) {
      check.violate({ check: typeof states === 'string' ? 'never-written' : 'final-value', key, detail: `final read through ${final.router}: ${JSON.stringify(final.value)}${typeof states === 'string' ? `: ${states}` : ', older than the last acknowledged write or delete'}`, context: { lastAcknowledged: lastAcked === 0 ? null : brief(mutations[lastAcked - 1]), after: mutations.slice(lastAcked).map(brief).slice(0, 5) } })
    }
  }
}

/**
 * A counter (increments and counter reads of one key, from 0):
 *  - counter-total: acknowledged <= final <= acknowledged + unknown, each final read (increments inside a
 *    window that lets them be lost count as unknown);
 *  - counter-read: no total, read or answered, above the increments sent (not failed) before it ended.
 */
function checkCounter(key: string, ops: HistoryOp[], finals: FinalRead[], check: CheckContext): void {
  const increments = ops.filter((op) => op.kind === 'incr')
  const sum = (list: HistoryOp[]) => list.reduce((total, op) => total + op.delta!, 0)
  const keptFor = (readAt: number) => increments.filter((op) => acknowledgedFor(op, check.windows, readAt))
  const acked = sum(keptFor(Infinity))
  const figures: CounterFigures = {
    key,
    acked,
    unknown: sum(increments.filter((op) => op.outcome === 'unknown')),
    failed: sum(increments.filter((op) => op.outcome === 'failed')),
    mayBeLost: sum(increments.filter((op) => op.outcome === 'ok')) - acked,
    final: finals.map((final) => final.value as number),
    lost: 0,
    maxReadShortfall: 0,
  }
  const upper = figures.acked + figures.unknown + figures.mayBeLost
  figures.lost = Math.max(0, sum(increments.filter((op) => op.outcome === 'ok')) - Math.min(...figures.final))
  for (const final of finals) {
    const total = final.value as number
    if (total < figures.acked || total > upper) check.violate({ check: 'counter-total', key, detail: `final total through ${final.router} is ${total}; acknowledged ${figures.acked} (+${figures.mayBeLost} that may be lost), unknown ${figures.unknown}: it must be within [${figures.acked}, ${upper}]`, context: figures })
  }
  for (const op of ops) {
    if (op.outcome !== 'ok' || op.total === undefined) continue
    const sent = sum(increments.filter((incr) => incr.outcome !== 'failed' && incr.invokedAt < op.completedAt))
    if (op.total > sent) check.violate({ check: 'counter-read', key, detail: `${op.kind} through ${op.router} showed ${op.total}, but only ${sent} had been sent`, context: brief(op) })
    if (op.kind === 'counterRead') {
      const ackedBefore = sum(keptFor(op.invokedAt).filter((incr) => incr.completedAt < op.invokedAt))
      figures.maxReadShortfall = Math.max(figures.maxReadShortfall, ackedBefore - op.total)
    }
  }
  check.verdict.counters.push(figures)
}
