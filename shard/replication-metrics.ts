// The replication gauges and counters on a shard's /metrics: lag (ops, bytes, seconds) for every
// link from both ends, the log's offset and backlog, syncs, peers dropped, loading and catch-ups.
import { Gauge, Histogram, type Registry } from 'prom-client'
import { mirroredCounter } from '../common/metric-helpers.ts'
import { LOADING_ACTIVITY, type LoadingReason, type Replication } from './replication.ts'

type Lag = { ops: number; bytes: number; seconds: number }
type LagRow = [labels: { peer: string; link: string }, lag: Lag]

export function registerReplicationMetrics(registry: Registry, replication: Replication): void {
  // to_replica (a primary's replicas) and to_primary (a replica's write-back to its primary) are
  // measured here from the peer's acknowledgements; from_primary and from_replica are this
  // shard's own view of a stream it receives.
  const servedLink = replication.role === 'replica' ? 'to_primary' : 'to_replica'
  const lagRows = (): LagRow[] => [
    ...(replication.source?.peerStates() ?? []).map((peer): LagRow => [{ peer: peer.peer, link: servedLink }, peer.lag]),
    ...[replication.upstream, ...replication.writeBacks].flatMap((link): LagRow[] => link === null ? [] : [[
      { peer: link.options.peer, link: link.options.direction === 'upstream' ? 'from_primary' : 'from_replica' },
      link.lag(),
    ]]),
  ]
  const lagGauge = (name: string, help: string, pick: (lag: Lag) => number) => new Gauge({
    name,
    help,
    labelNames: ['peer', 'link'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [labels, lag] of lagRows()) this.set(labels, pick(lag))
    },
  })
  lagGauge('shardline_replication_lag_seconds', 'Age of the oldest write a replication peer has not acknowledged (or, receiving, has not applied).', (lag) => lag.seconds)
  lagGauge('shardline_replication_lag_operations', 'Log operations a replication peer is behind.', (lag) => lag.ops)
  lagGauge('shardline_replication_lag_bytes', 'Bytes of log a replication peer is behind.', (lag) => lag.bytes)
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name, help, registers: [registry], collect() { this.set(read()) } })
  gauge('shardline_replication_offset', 'Offset of the next write appended to this shard\'s replication log.', () => replication.log?.headOffset ?? 0)
  gauge('shardline_replication_backlog_bytes', 'Bytes of replication log held for peers to resume from.', () => replication.log?.bytes ?? 0)
  gauge('shardline_replication_connected_peers', 'Peers streaming this shard\'s replication log.', () => replication.source?.peerStates().length ?? 0)
  gauge('shardline_replication_warming_up', '1 while an empty primary loads a replica\'s snapshot and answers -LOADING.', () => (replication.warmingUp ? 1 : 0))
  new Gauge({
    name: 'shardline_replication_loading',
    help: '1 while this shard answers -LOADING, by reason: warm_up (a restarted primary loads a replica\'s snapshot) or catch_up (a primary back from a stall applies what its replicas took).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const reason of Object.keys(LOADING_ACTIVITY) as LoadingReason[]) this.set({ reason }, replication.loading === reason ? 1 : 0)
    },
  })
  registerCatchUpMetrics(registry, replication)
  mirroredCounter({
    name: 'shardline_replication_syncs_total',
    help: 'Replication syncs, by kind (full or partial) and side (served to a peer, or received from one).',
    labelNames: ['kind', 'side'],
    registry,
    read: () => {
      const served = replication.source?.counts ?? { fullSyncs: 0, partialSyncs: 0 }
      const links = [replication.upstream, ...replication.writeBacks].filter((link) => link !== null)
      const received = (kind: 'fullSyncs' | 'partialSyncs') => links.reduce((sum, link) => sum + link.counts[kind], 0)
      return [
        [{ kind: 'full', side: 'served' }, served.fullSyncs],
        [{ kind: 'partial', side: 'served' }, served.partialSyncs],
        [{ kind: 'full', side: 'received' }, received('fullSyncs')],
        [{ kind: 'partial', side: 'received' }, received('partialSyncs')],
      ]
    },
  })
  mirroredCounter({
    name: 'shardline_replication_peers_dropped_total',
    help: 'Replication peers this shard dropped, by reason (garbage, too_far_behind, timeout).',
    labelNames: ['reason'],
    registry,
    read: () => Object.entries(replication.source?.counts.dropped ?? { garbage: 0, too_far_behind: 0, timeout: 0 }).map(([reason, count]) => [{ reason }, count]),
  })
}

function registerCatchUpMetrics(registry: Registry, replication: Replication): void {
  const catchUp = replication.catchUp
  if (catchUp === null) return
  mirroredCounter({
    name: 'shardline_replication_catch_ups_total',
    help: 'Catch-ups of a primary after a stall or a lost write-back link, by outcome: caught_up, or gave_up (timed out and served what it had).',
    labelNames: ['outcome'],
    registry,
    read: () => Object.entries(catchUp.counts).map(([outcome, count]) => [{ outcome }, count]),
  })
  const duration = new Histogram({
    name: 'shardline_replication_catch_up_duration_seconds',
    help: 'How long a primary answered -LOADING while catching up with its replicas, by outcome.',
    labelNames: ['outcome'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  catchUp.onEnded((outcome, seconds) => duration.observe({ outcome }, seconds))
}
