// The shard's Prometheus metrics: commands and their latency, hits and misses, evictions and
// expirations, items, bytes, the budget, connections, refused credentials and TLS handshakes, and
// the process's own memory.
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { LATENCY_BUCKETS_SECONDS, mirroredCounter, type MirroredCounterConfig } from '../common/metric-helpers.ts'
import type { Store } from './store.ts'
import { AUTH_FAILURE_REASONS, type AuthFailureReason } from './shard-auth.ts'

/** The shard's two listeners, as TLS handshake failures are labelled. */
export type ShardPort = 'resp' | 'admin'

/** Why the shard closed a client's connection (resp-server.ts). */
export const DROP_REASONS = ['protocol_error', 'query_buffer', 'clients_memory', 'slow_client', 'idle', 'max_clients'] as const
export type DropReason = (typeof DROP_REASONS)[number]

export interface ConnectionStats {
  current: number
  total: number
  dropped: Record<DropReason, number>
  /** Bytes held in clients' query and output buffers, all clients together. */
  bufferedBytes: number
}

export function newConnectionStats(): ConnectionStats {
  return { current: 0, total: 0, dropped: Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0])) as Record<DropReason, number>, bufferedBytes: 0 }
}

/**
 * Per-command counts kept as plain numbers (prom-client hashes the labels on every inc, a cost
 * the pipelined request path notices) and read at scrape time, plus the histogram child (fed a sample).
 */
export interface CommandInstruments {
  ok: number
  error: number
  duration: { observe(seconds: number): void }
}

export class ShardMetrics {
  readonly registry = new Registry()
  private readonly duration: Histogram<'command'>
  private readonly instruments = new Map<string, CommandInstruments>()
  /** Counted by ShardAuth as it refuses. */
  readonly authFailures = Object.fromEntries(AUTH_FAILURE_REASONS.map((reason) => [reason, 0])) as Record<AuthFailureReason, number>
  readonly tlsHandshakeFailures: Record<ShardPort, number> = { resp: 0, admin: 0 }

  constructor(name: string, store: Store, connections: ConnectionStats) {
    this.registry.setDefaultLabels({ shard: name })
    collectDefaultMetrics({ register: this.registry })
    mirroredCounter({
      name: 'shardline_shard_commands_total',
      help: 'RESP commands processed, by command and outcome (ok or error).',
      labelNames: ['command', 'outcome'],
      registry: this.registry,
      read: () => [...this.instruments].flatMap(([command, counts]): Array<[Record<string, string>, number]> => [
        [{ command, outcome: 'ok' }, counts.ok],
        [{ command, outcome: 'error' }, counts.error],
      ]),
    })
    this.duration = new Histogram({
      name: 'shardline_shard_command_duration_seconds',
      help: 'Time to execute a RESP command inside the shard, by command.',
      labelNames: ['command'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers: [this.registry],
    })
    const counter = (name: string, help: string, read: MirroredCounterConfig['read'], labelNames?: string[]) =>
      mirroredCounter({ name, help, read, labelNames, registry: this.registry })
    const stats = store.stats
    counter('shardline_shard_keyspace_hits_total', 'Reads that found a live key.', () => stats.hits)
    counter('shardline_shard_keyspace_misses_total', 'Reads that found no live key.', () => stats.misses)
    counter('shardline_shard_evictions_total', 'Entries evicted to stay within the memory budget.', () => stats.evictions)
    counter('shardline_shard_expirations_total', 'Entries removed because their TTL passed, by reason (read or sweep).', () => [
      [{ reason: 'read' }, stats.expiredOnRead],
      [{ reason: 'sweep' }, stats.expiredBySweep],
    ], ['reason'])
    counter('shardline_shard_admissions_rejected_total', 'New entries the lfu policy refused because they were rarer than the eviction victim.', () => stats.admissionsRejected)
    counter('shardline_shard_connections_total', 'RESP connections accepted.', () => connections.total)
    counter('shardline_shard_connections_dropped_total', 'RESP connections closed by the shard, by reason.', () =>
      DROP_REASONS.map((reason): [Record<string, string>, number] => [{ reason }, connections.dropped[reason]]), ['reason'])
    counter('shardline_shard_auth_failures_total', 'RESP commands and admin requests refused for credentials: none yet (noauth), a wrong password or token (wrongpass), an internal command to an ordinary client (noperm).', () =>
      AUTH_FAILURE_REASONS.map((reason): [Record<string, string>, number] => [{ reason }, this.authFailures[reason]]), ['reason'])
    counter('shardline_shard_tls_handshake_failures_total', 'TLS handshakes that failed, by port (resp or admin).', () =>
      (['resp', 'admin'] as const).map((port): [Record<string, string>, number] => [{ port }, this.tlsHandshakeFailures[port]]), ['port'])
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()) } })
    gauge('shardline_shard_items', 'Live entries in the store.', () => store.size)
    gauge('shardline_shard_stored_bytes', 'Bytes charged against the memory budget (keys, values, per-entry overhead).', () => store.bytes)
    gauge('shardline_shard_memory_budget_bytes', 'The configured memory budget (maxMemory).', () => store.maxMemory)
    gauge('shardline_shard_connections', 'Open RESP connections.', () => connections.current)
    gauge('shardline_shard_client_buffer_bytes', "Bytes held in RESP clients' query and output buffers, all clients together.", () => connections.bufferedBytes)
    new Gauge({
      name: 'shardline_shard_info',
      help: 'Constant 1, labelled with the eviction policy.',
      labelNames: ['policy'],
      registers: [this.registry],
      collect() { this.set({ policy: store.policy }, 1) },
    })
  }

  /** Instruments for one command name (unknown names share "unknown", keeping labels bounded). */
  command(name: string): CommandInstruments {
    let instruments = this.instruments.get(name)
    if (!instruments) {
      instruments = { ok: 0, error: 0, duration: this.duration.labels(name) }
      this.instruments.set(name, instruments)
    }
    return instruments
  }
}
