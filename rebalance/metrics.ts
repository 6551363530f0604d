// The rebalance job's tallies, its own prom-client registry over them, and the --metrics
// listener that serves /metrics while the job runs.
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Gauge, Registry } from 'prom-client'
import { mirroredCounter } from '../common/metric-helpers.ts'
import type { Endpoint } from '../router/config.ts'

export interface RebalanceTally {
  scanned: number
  moved: number
  skippedOlder: number
  removed: number
  failed: number
  /** Old copies SL.DROP kept because a newer write landed on them (a router still on the old config). */
  keptNewer: number
  shardsPending: number
  shardsDone: number
}

export function emptyTally(shards: number): RebalanceTally {
  return { scanned: 0, moved: 0, skippedOlder: 0, removed: 0, failed: 0, keptNewer: 0, shardsPending: shards, shardsDone: 0 }
}

export function rebalanceRegistry(tally: RebalanceTally, rateLimit: number): Registry {
  const registry = new Registry()
  mirroredCounter({
    name: 'shardline_rebalance_keys_total',
    help: 'Keys the rebalance job handled, by outcome: scanned, moved (stored on their new owner), skipped_older (the new owner had as new or newer), removed (from the old owner), failed.',
    labelNames: ['outcome'],
    registry,
    read: () => [
      [{ outcome: 'scanned' }, tally.scanned],
      [{ outcome: 'moved' }, tally.moved],
      [{ outcome: 'skipped_older' }, tally.skippedOlder],
      [{ outcome: 'removed' }, tally.removed],
      [{ outcome: 'failed' }, tally.failed],
    ],
  })
  new Gauge({
    name: 'shardline_rebalance_shards',
    help: 'Shards the rebalance job still has to scan (pending) and has scanned (done).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.set({ state: 'pending' }, tally.shardsPending)
      this.set({ state: 'done' }, tally.shardsDone)
    },
  })
  const rate = new Gauge({ name: 'shardline_rebalance_rate_limit_keys_per_second', help: 'The job\'s --rate: keys moved per second at most (0 = unlimited).', registers: [registry] })
  rate.set(rateLimit)
  return registry
}

/** Serves registry at /metrics on endpoint (port 0 picks one); resolves with the bound address. */
export async function serveMetrics(registry: Registry, endpoint: Endpoint): Promise<{ address: AddressInfo; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404).end()
      return
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => response.writeHead(500).end(),
    )
  })
  // One scraper is expected; a few connections are plenty.
  server.maxConnections = 16
  server.listen(endpoint.port, endpoint.host)
  await once(server, 'listening')
  return {
    address: server.address() as AddressInfo,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}
