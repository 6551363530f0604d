// A returning primary's catch-up: after its event loop stalled (a hang, SIGSTOP), it answers
// -LOADING until each write-back link has passed a barrier, bounded.
import type { Logger } from '../common/logger.ts'
import { SILENCE_MS, type ReplicationLink } from './replication-link.ts'

export interface CatchUpSettings {
  /** A stall of the event loop longer than this starts a catch-up: keep it below the routers' timeout. */
  stallMs: number
  /** Past this the primary gives up waiting and serves what it has; 0 turns catch-up off. */
  timeoutMs: number
}

export type CatchUpOutcome = 'caught_up' | 'gave_up'

interface Round {
  trigger: string
  startedAt: number
  /** The links that have not passed their barrier yet. */
  waiting: Set<ReplicationLink>
  timer: NodeJS.Timeout | null
}

/** The stall watch ticks this often (a quarter of stallMs, within 5–50 ms). */
function tickMs(stallMs: number): number {
  return Math.max(5, Math.min(50, Math.floor(stallMs / 4)))
}

export class CatchUp {
  readonly counts: Record<CatchUpOutcome, number> = { caught_up: 0, gave_up: 0 }
  last: { trigger: string; outcome: CatchUpOutcome; seconds: number } | null = null
  private readonly links: ReplicationLink[]
  private readonly settings: CatchUpSettings
  /** The replication timeout: a link down longer than this before a stall is not waited for. */
  private readonly linkTimeoutMs: number
  private readonly logger: Logger
  /** True while something else (warm-up) already keeps commands out. */
  private readonly held: () => boolean
  private readonly endListeners: Array<(outcome: CatchUpOutcome, seconds: number) => void> = []
  private round: Round | null = null
  private lastTick = Date.now()
  private ticker: NodeJS.Timeout | null = null

  constructor(options: { links: ReplicationLink[]; settings: CatchUpSettings; linkTimeoutMs: number; logger: Logger; held: () => boolean }) {
    this.links = options.links
    this.settings = options.settings
    this.linkTimeoutMs = options.linkTimeoutMs
    this.logger = options.logger
    this.held = options.held
  }

  get active(): boolean {
    return this.round !== null
  }

  start(): void {
    this.lastTick = Date.now()
    this.ticker = setInterval(() => {
      const now = Date.now()
      this.noticeStall(now)
      this.lastTick = now
    }, tickMs(this.settings.stallMs))
    this.ticker.unref()
  }

  /**
   * Starts a catch-up if the event loop stalled since the last tick. Called with the time a
   * command's bytes were read, before it runs: after SIGCONT, the commands that queued during the
   * pause are read and run before any timer fires, so the ticker alone would notice too late.
   */
  noticeStall(now: number): void {
    const since = this.lastTick
    if (now - since <= this.settings.stallMs) return
    this.lastTick = now
    // A replica already dead or hung when the stall began must not make every pause cost the
    // whole timeout: a link down for longer than the replication timeout then, or connected but
    // silent for longer than missed heartbeats explain, is not waited for.
    const links = this.links.filter((link) => link.downSince === null ? since - link.lastHeardAt <= SILENCE_MS : since - link.downSince <= this.linkTimeoutMs)
    this.begin(`the event loop stalled for ${now - since} ms`, links)
  }

  /** The settings, the round in progress (if any), and the outcomes so far, for /stats. */
  describe(): Record<string, unknown> {
    const round = this.round
    return {
      ...this.settings,
      active: round ? { trigger: round.trigger, seconds: (Date.now() - round.startedAt) / 1000, waitingFor: [...round.waiting].map((link) => ({ peer: link.options.peer, state: link.state })) } : null,
      caughtUp: this.counts.caught_up,
      gaveUp: this.counts.gave_up,
      last: this.last,
    }
  }

  onEnded(listener: (outcome: CatchUpOutcome, seconds: number) => void): void {
    this.endListeners.push(listener)
  }

  close(): void {
    if (this.ticker) clearInterval(this.ticker)
    if (this.round?.timer) clearTimeout(this.round.timer)
  }

  private begin(trigger: string, links: ReplicationLink[]): void {
    if (this.held()) return
    if (links.length === 0) {
      this.logger.info({ trigger }, 'no catch-up: every write-back link was down or silent before it')
      return
    }
    const round = this.round ?? this.open(trigger, links)
    // Bounded from the latest trigger: a second stall in a round must not use up the time it had.
    if (round.timer) clearTimeout(round.timer)
    round.timer = setTimeout(() => this.end('gave_up'), this.settings.timeoutMs)
    for (const link of links) {
      round.waiting.add(link)
      link.awaitBarrier(() => {
        round.waiting.delete(link)
        if (round.waiting.size === 0 && this.round === round) this.end('caught_up')
      })
    }
  }

  private open(trigger: string, links: ReplicationLink[]): Round {
    this.logger.info({ trigger, links: links.map((link) => link.options.peer), timeoutMs: this.settings.timeoutMs }, 'catching up: answering -LOADING until the write-back links have applied what their replicas hold')
    this.round = { trigger, startedAt: Date.now(), waiting: new Set(), timer: null }
    return this.round
  }

  private end(outcome: CatchUpOutcome): void {
    const round = this.round!
    this.round = null
    if (round.timer) clearTimeout(round.timer)
    for (const link of round.waiting) link.cancelBarrier()
    const seconds = (Date.now() - round.startedAt) / 1000
    this.counts[outcome]++
    this.last = { trigger: round.trigger, outcome, seconds }
    if (outcome === 'caught_up') {
      this.logger.info({ trigger: round.trigger, seconds }, 'caught up with the replicas: serving')
    } else {
      const waitingFor = [...round.waiting].map((link) => ({ peer: link.options.peer, state: link.state }))
      this.logger.warn({ trigger: round.trigger, waitingFor, timeoutMs: this.settings.timeoutMs }, 'catch-up gave up: a write-back link did not catch up in time; serving with what this shard has')
    }
    for (const listener of this.endListeners) listener(outcome, seconds)
  }
}
