// Glue between plain numeric stats kept on the hot path and prom-client: counters that follow
// monotonically growing numbers, read when Prometheus scrapes; shared latency buckets.
import { Counter, type Registry } from 'prom-client'

export interface MirroredCounterConfig {
  name: string
  help: string
  registry: Registry
  labelNames?: string[]
  /** The current totals: one number, or [labels, total] pairs for a labelled counter. */
  read: () => number | Array<[Record<string, string>, number]>
}

/** A counter kept equal, at each scrape, to totals counted elsewhere without prom-client. */
export function mirroredCounter(config: MirroredCounterConfig): Counter {
  const seen = new Map<string, number>()
  return new Counter({
    name: config.name,
    help: config.help,
    labelNames: config.labelNames ?? [],
    registers: [config.registry],
    collect() {
      const totals = config.read()
      for (const [labels, total] of typeof totals === 'number' ? ([[{}, totals]] as const) : totals) {
        const id = JSON.stringify(labels)
        const previous = seen.get(id)
        // A zero is exported too: a dashboard's rate() of a series that is not there is no data, not 0.
        if (previous === undefined || total > previous) this.inc(labels, total - (previous ?? 0))
        seen.set(id, total)
      }
    },
  })
}

/** Histogram buckets in seconds, fine below a millisecond where a cache lives. */
export const LATENCY_BUCKETS_SECONDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5]
