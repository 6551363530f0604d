// `shardline rebalance --config <router config>`: moves every key that is not on the shard the
// config's ring gives it; a progress bar on a terminal, one summary line, exit 0 / 1 / 2 / 130 / 143.
import { parseArgs } from 'node:util'
import { ConfigError } from '../common/validate.ts'
import { loadRouterConfig, toEndpoint } from '../router/config.ts'
import { RebalanceJob } from '../rebalance/job.ts'
import { rebalanceRegistry, serveMetrics } from '../rebalance/metrics.ts'
import { startProgress, summaryLine } from '../rebalance/progress.ts'
import { MAX_RATE, RateLimiter } from '../rebalance/rate-limiter.ts'
import { MAX_PAGE } from '../rebalance/shard-scanner.ts'

export const REBALANCE_USAGE = `shardline rebalance --config <file> [options]
  moves every key whose owner under the config's ring is not the shard holding it (run it after
  every router has reloaded that config); safe to stop and run again: a rerun does what is left
  --config <file>         the routers' YAML config (draining shards are emptied)
  --pool <name>           only this pool (default: every pool)
  --rate <keys/s>         keys moved per second at most, a token bucket (default 0 = unlimited; 0-${MAX_RATE})
  --page <n>              keys read per SL.SCAN page (default 1000; 1-${MAX_PAGE})
  --shard-timeout <s>     how long an unreachable shard is retried before its keys count as failed (default 60)
  --metrics <host:port>   serve the job's Prometheus metrics at /metrics while it runs
  --dry-run               count what would move; change nothing
exit status: 0 done, 1 something failed (rerun it), 2 bad flags or config, 130/143 stopped by SIGINT/SIGTERM`

const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const

export async function runRebalanceCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      config: { type: 'string' },
      pool: { type: 'string' },
      rate: { type: 'string', default: '0' },
      page: { type: 'string', default: '1000' },
      'shard-timeout': { type: 'string', default: '60' },
      metrics: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean' },
    },
  })
  if (values.help) {
    console.log(REBALANCE_USAGE)
    return
  }
  if (!values.config) throw new ConfigError(`--config is required\n${REBALANCE_USAGE}`)
  const config = loadRouterConfig(values.config)
  if (values.pool !== undefined && !config.pools[values.pool]) throw new ConfigError(`--pool: "${values.pool}" names no pool (pools: ${Object.keys(config.pools).join(', ')})`)
  const rate = new RateLimiter(wholeNumber('rate', values.rate, 0, MAX_RATE))
  const job = new RebalanceJob({
    config,
    pool: values.pool,
    page: wholeNumber('page', values.page, 1, MAX_PAGE),
    rate,
    dryRun: values['dry-run'],
    shardTimeoutMs: wholeNumber('shard-timeout', values['shard-timeout'], 1, 86_400) * 1000,
  })
  const startedAt = performance.now()
  const metrics = values.metrics === undefined ? null : await serveMetrics(rebalanceRegistry(job.tally, rate.keysPerSecond), metricsEndpoint(values.metrics))
  if (metrics) console.error(`rebalance: metrics on http://${metrics.address.address}:${metrics.address.port}/metrics`)
  let stoppedBy: keyof typeof SIGNAL_EXIT | null = null
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stoppedBy = signal
      job.stop()
    })
  }
  const progress = startProgress(job.tally, startedAt)
  const { tally, failedShards } = await job.run()
  progress.stop()
  await metrics?.close()
  for (const failure of failedShards) console.error(`rebalance: shard ${failure}`)
  if (tally.keptNewer > 0) console.error(`rebalance: ${tally.keptNewer} old copies were newer than what was moved (a router still on the old config wrote them): run the job again once every router has reloaded`)
  if (values['dry-run']) console.error('rebalance: dry run, nothing was changed: "moved" counts the keys that would move')
  console.log(summaryLine(tally, (performance.now() - startedAt) / 1000))
  process.exitCode = stoppedBy !== null ? SIGNAL_EXIT[stoppedBy] : tally.failed > 0 || failedShards.length > 0 ? 1 : 0
}

function wholeNumber(flag: string, text: string, min: number, max: number): number {
  const value = /^\d{1,15}$/.test(text) ? Number(text) : NaN
  if (!(value >= min && value <= max)) throw new ConfigError(`--${flag}: "${text}" must be a whole number from ${min} to ${max}`)
  return value
}

function metricsEndpoint(text: string) {
  if (!/^[^\s:]+:\d{1,5}$/.test(text)) throw new ConfigError(`--metrics: "${text}" must be host:port`)
  return toEndpoint(text)
}
