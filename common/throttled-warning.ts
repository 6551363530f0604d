// Warnings about what clients and peers send, logged once per burst: the first at once, then at
// most one per interval saying how many were left unlogged, so a flood of bad input cannot flood the log.
import type { Logger } from './logger.ts'

const DEFAULT_INTERVAL_MS = 10_000

export class ThrottledWarning {
  private readonly log: Logger
  private readonly message: string
  private readonly intervalMs: number
  private lastLoggedAt = -Infinity
  private unlogged = 0

  constructor(log: Logger, message: string, intervalMs = DEFAULT_INTERVAL_MS) {
    this.log = log
    this.message = message
    this.intervalMs = intervalMs
  }

  warn(details: Record<string, unknown>): void {
    const now = Date.now()
    if (now - this.lastLoggedAt < this.intervalMs) {
      this.unlogged++
      return
    }
    this.log.warn(this.unlogged > 0 ? { ...details, unlogged: this.unlogged } : details, this.message)
    this.lastLoggedAt = now
    this.unlogged = 0
  }
}

/** One ThrottledWarning per message, made on first use (messages come from a fixed set). */
export class ThrottledWarnings {
  private readonly log: Logger
  private readonly byMessage = new Map<string, ThrottledWarning>()

  constructor(log: Logger) {
    this.log = log
  }

  warn(message: string, details: Record<string, unknown>): void {
    let warning = this.byMessage.get(message)
    if (!warning) {
      warning = new ThrottledWarning(this.log, message)
      this.byMessage.set(message, warning)
    }
    warning.warn(details)
  }
}
