// Graceful shutdown for every shardline process: on SIGTERM or SIGINT, run the close step once
// and exit 0; if it has not finished within 5 seconds, exit anyway (with status 1).
import type { Logger } from '../common/logger.ts'

const HARD_DEADLINE_MS = 5000

export function installShutdown(log: Logger, close: () => Promise<void>): void {
  let stopping = false
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down')
    setTimeout(() => {
      log.error('shutdown did not finish in time, exiting')
      process.exit(1)
    }, HARD_DEADLINE_MS).unref()
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
