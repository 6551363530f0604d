// The cross-region shipping metrics on a shard's /metrics, one series per peer region: lag, queue,
// parked writes, link state, and what was shipped, resynced and refused.
import { Gauge, type Registry } from 'prom-client'
import { mirroredCounter } from '../common/metric-helpers.ts'
import type { RegionShipper } from './region-shipper.ts'

export function registerRegionMetrics(registry: Registry, shippers: readonly RegionShipper[]): void {
  const gauge = (name: string, help: string, read: (shipper: RegionShipper) => number) => new Gauge({
    name,
    help,
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      for (const shipper of shippers) this.set({ peer: shipper.peer }, read(shipper))
    },
  })
  gauge('shardline_region_lag_seconds', 'Age of the oldest write a peer region has not acknowledged (during a full scan: since the scan began); 0 when caught up.', (shipper) => shipper.lagSeconds())
  gauge('shardline_region_queue_ops', 'Local writes in the replication log a peer region has not acknowledged.', (shipper) => shipper.queuedOps())
  gauge('shardline_region_parked_ops', 'Writes a peer region answered TRYAGAIN or LOADING for (their owning shard there is unreachable or loading), set aside for a retry while the rest ships.', (shipper) => shipper.parkedOps())
  gauge('shardline_region_connected', '1 while the link to a peer region\'s routers is up and past its handshake.', (shipper) => (shipper.connected ? 1 : 0))
  const counter = (name: string, help: string, read: (shipper: RegionShipper) => number) => mirroredCounter({
    name,
    help,
    labelNames: ['peer'],
    registry,
    read: () => shippers.map((shipper): [Record<string, string>, number] => [{ peer: shipper.peer }, read(shipper)]),
  })
  counter('shardline_region_shipped_ops_total', 'Writes (log ops and fully scanned keys) a peer region answered.', (shipper) => shipper.counts.shippedOps)
  counter('shardline_region_shipped_bytes_total', 'Bytes of the writes a peer region answered, as sent (SL.REGION.APPLY included).', (shipper) => shipper.counts.shippedBytes)
  counter('shardline_region_rejected_total', 'Writes a peer region refused for good (not TRYAGAIN or LOADING): counted and skipped.', (shipper) => shipper.counts.rejected)
  mirroredCounter({
    name: 'shardline_region_resyncs_total',
    help: 'Resyncs with a peer region, by kind: partial (a link back, resuming from its cursor) or full (a scan of every key).',
    labelNames: ['peer', 'kind'],
    registry,
    read: () => shippers.flatMap((shipper): Array<[Record<string, string>, number]> => [
      [{ peer: shipper.peer, kind: 'partial' }, shipper.counts.resyncs.partial],
      [{ peer: shipper.peer, kind: 'full' }, shipper.counts.resyncs.full],
    ]),
  })
}
