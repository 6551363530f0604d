// What the rebalance job prints: a progress bar redrawn on stderr when it is a terminal (nothing
// otherwise), and the one summary line at the end.
import type { RebalanceTally } from './metrics.ts'

const REDRAW_MS = 250
const BAR_WIDTH = 20

/** The summary line, exactly as operators and scripts read it. */
export function summaryLine(tally: RebalanceTally, seconds: number): string {
  return `rebalance: scanned ${tally.scanned} keys, moved ${tally.moved}, skipped ${tally.skippedOlder} as older, removed ${tally.removed}, failed ${tally.failed} in ${seconds.toFixed(1)} s`
}

export function progressLine(tally: RebalanceTally, seconds: number): string {
  const shards = tally.shardsPending + tally.shardsDone
  const filled = shards === 0 ? BAR_WIDTH : Math.round((tally.shardsDone / shards) * BAR_WIDTH)
  const rate = seconds > 0 ? Math.round(tally.moved / seconds) : 0
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] shards ${tally.shardsDone}/${shards}, scanned ${tally.scanned}, moved ${tally.moved} (${rate} keys/s), failed ${tally.failed}`
}

/** Redraws the progress line on stream until stop(); does nothing when stream is not a terminal. */
export function startProgress(tally: RebalanceTally, startedAt: number, stream: NodeJS.WriteStream = process.stderr): { stop(): void } {
  if (!stream.isTTY) return { stop() {} }
  const draw = () => stream.write(`\r${progressLine(tally, (performance.now() - startedAt) / 1000)}\u001b[K`)
  const timer = setInterval(draw, REDRAW_MS)
  timer.unref()
  return {
    stop() {
      clearInterval(timer)
      draw()
      stream.write('\n')
    },
  }
}
