// One shard's replication: its log and the source that serves it, the link to its primary
// (replicaOf), the write-back links to its replicas, loading (warm-up, catch-up), and /stats.
import type net from 'node:net'
import type { Logger } from '../common/logger.ts'
import { RespWriter } from '../common/resp-writer.ts'
import { CatchUp, type CatchUpSettings } from './catch-up.ts'
import { CommandError } from './commands.ts'
import { entryVersion } from './entry.ts'
import { ReplicationLink, type LinkOptions } from './replication-link.ts'
import { ReplicationLog } from './replication-log.ts'
import { ReplicationSource, type SourceSettings } from './replication-source.ts'
import { DROP, FLUSH, command, writeChangeOp } from './replication-wire.ts'
import type { Store, StoreChangeListener } from './store.ts'

export interface ReplicationSettings extends SourceSettings {
  /** host:port of this shard's primary; null for a primary. */
  replicaOf: string | null
  /** host:port of this primary's replicas: failover writes flow back from them, and warm-up reads one. */
  replicas: string[]
  backlogBytes: number
  /** How long an empty primary waits for a replica's snapshot before serving empty. */
  warmupTimeoutMs: number
  catchUp: CatchUpSettings
}

/** How this shard's links reach their peers: over TLS or not, authenticated or not. */
export type PeerAccess = Pick<LinkOptions, 'tls' | 'password'>

export type ReplicationRole = 'primary' | 'replica' | 'standalone'

/**
 * Why a primary answers -LOADING: warm-up (started empty, loading a replica's snapshot) or
 * catch-up (back from a stall, or a write-back link back, applying what its replicas took).
 */
export type LoadingReason = 'warm_up' | 'catch_up'

/** What the shard is doing, as -LOADING replies and /readyz say it. */
export const LOADING_ACTIVITY: Record<LoadingReason, string> = {
  warm_up: 'warming up from its replicas',
  catch_up: 'catching up with its replicas',
}

export class Replication {
  readonly role: ReplicationRole
  readonly upstream: ReplicationLink | null
  readonly writeBacks: ReplicationLink[]
  warmingUp: boolean
  /** A primary's catch-up (null for others, or when catchUp.timeoutMs is 0). */
  readonly catchUp: CatchUp | null
  private readonly settings: ReplicationSettings
  private readonly store: Store
  private readonly logger: Logger
  private serving: { log: ReplicationLog; source: ReplicationSource; recorder: ChangeRecorder } | null = null
  private warmupTimer: NodeJS.Timeout | null = null
  private readonly loggedListeners: Array<() => void> = []

  constructor(settings: ReplicationSettings, store: Store, logger: Logger, selfName: () => string, maxValueBytes: number, peerAccess: PeerAccess) {
    this.settings = settings
    this.store = store
    this.logger = logger
    this.role = settings.replicaOf ? 'replica' : settings.replicas.length > 0 ? 'primary' : 'standalone'
    const link = (peer: string, direction: 'upstream' | 'write-back') => new ReplicationLink({
      peer,
      direction,
      selfName,
      store,
      // Writes from the primary are not logged again (a replica's log holds only the writes it
      // took itself, during failover); writes flowing back to a primary are, for its other replicas.
      applying: direction === 'upstream' ? (apply) => this.muted(apply) : (apply) => apply(),
      timeoutMs: settings.timeoutMs,
      maxValueBytes,
      log: logger,
      onSnapshotApplied: (keysSeen) => this.snapshotApplied(peer, direction, keysSeen),
      ...peerAccess,
    })
    this.upstream = settings.replicaOf ? link(settings.replicaOf, 'upstream') : null
    this.writeBacks = settings.replicas.map((peer) => link(peer, 'write-back'))
    this.warmingUp = this.writeBacks.length > 0
    this.catchUp = this.writeBacks.length > 0 && settings.catchUp.timeoutMs > 0
      ? new CatchUp({ links: this.writeBacks, settings: settings.catchUp, linkTimeoutMs: settings.timeoutMs, logger, held: () => this.warmingUp })
      : null
    // A configured shard logs from its first write, so a peer that connects later can resume.
    if (this.role !== 'standalone') this.serve()
  }

  start(): void {
    this.upstream?.start()
    for (const link of this.writeBacks) link.start()
    this.catchUp?.start()
    if (this.warmingUp) {
      this.logger.info({ replicas: this.settings.replicas, timeoutMs: this.settings.warmupTimeoutMs }, 'warming up: not ready until a replica\'s snapshot is applied')
      this.warmupTimer = setTimeout(() => {
        if (!this.warmingUp) return
        this.warmingUp = false
        this.logger.warn({ replicas: this.settings.replicas, timeoutMs: this.settings.warmupTimeoutMs }, 'warm-up gave up: no replica answered in time; serving with what this shard has')
      }, this.settings.warmupTimeoutMs)
    }
  }

  /** Why commands get -LOADING now, or null when the shard serves. */
  get loading(): LoadingReason | null {
    if (this.warmingUp) return 'warm_up'
    return this.catchUp?.active ? 'catch_up' : null
  }

  /**
   * loading, checked before a command runs; readAt is when its bytes were read, so a stall of the
   * event loop is noticed before the first command that waited through it is answered.
   */
  loadingAt(readAt: number): LoadingReason | null {
    this.catchUp?.noticeStall(readAt)
    return this.loading
  }

  /** SL.SYNC <replid|?> <offset|-1> [peer name]: hands the connection to the source. */
  attach(socket: net.Socket, args: Buffer[]): (args: Buffer[]) => void {
    if (args.length < 3 || args.length > 4) throw new CommandError("ERR wrong number of arguments for 'sl.sync' command")
    const offset = Number(args[2].toString('latin1'))
    if (!Number.isSafeInteger(offset) || offset < -1) throw new CommandError('ERR offset must be an integer >= -1')
    const peerName = args[3]?.toString('latin1') ?? `${socket.remoteAddress}:${socket.remotePort}`
    // A peer syncing from this replica is most likely its primary back from a restart.
    this.upstream?.retryNow()
    return this.serve().source.attach(socket, { replid: args[1].toString('latin1'), offset, peerName })
  }

  stats(): Record<string, unknown> {
    const serving = this.serving
    return {
      role: this.role,
      loading: this.loading,
      warmingUp: this.warmingUp,
      catchUp: this.catchUp?.describe() ?? null,
      replid: serving?.log.replid ?? null,
      offset: serving?.log.headOffset ?? 0,
      backlog: serving ? { firstOffset: serving.log.firstOffset, bytes: serving.log.bytes, maxBytes: serving.log.maxBytes } : null,
      peers: serving?.source.peerStates() ?? [],
      served: serving ? { ...serving.source.counts, dropped: { ...serving.source.counts.dropped } } : null,
      upstream: this.upstream?.describe() ?? null,
      writeBack: this.writeBacks.map((link) => link.describe()),
    }
  }

  /** The source once something has asked to replicate from this shard (null before). */
  get source(): ReplicationSource | null {
    return this.serving?.source ?? null
  }

  get log(): ReplicationLog | null {
    return this.serving?.log ?? null
  }

  /** The log, kept from now on even by a standalone shard (a region shipper reads it from its start). */
  openLog(): ReplicationLog {
    return this.serve().log
  }

  /** Calls listener after every op appended to the log (once the log is open). */
  onLogged(listener: () => void): void {
    this.loggedListeners.push(listener)
  }

  close(): void {
    if (this.warmupTimer) clearTimeout(this.warmupTimer)
    this.catchUp?.close()
    this.upstream?.close()
    for (const link of this.writeBacks) link.close()
    this.serving?.source.close()
  }

  // A standalone shard starts logging only when the first peer asks, so a shard nobody
  // replicates pays nothing per write.
  private serve(): NonNullable<Replication['serving']> {
    if (this.serving) return this.serving
    const log = new ReplicationLog(this.settings.backlogBytes)
    const source = new ReplicationSource(this.store, log, this.settings, this.logger)
    // A replica's evictions are its own business; a primary's are replayed so replicas converge.
    const recorder = new ChangeRecorder(log, this.role !== 'replica', () => {
      for (const listener of this.loggedListeners) listener()
    })
    this.store.changes = recorder
    this.serving = { log, source, recorder }
    return this.serving
  }

  // A snapshot merges, so a key the primary deleted or evicted while this replica was away (its
  // tombstone gone by now) would outlive it here. After a full resync from the primary, a key
  // neither the snapshot nor the ops beside it carried is removed, unless it is a write this
  // replica took itself that the primary has not acknowledged yet.
  private removeKeysThePrimaryLacks(keysSeen: Set<string>): void {
    const pending = this.serving?.source.unacknowledgedKeys() ?? new Set<string>()
    if (pending === null) {
      this.logger.warn('after the full resync, keys the primary lacks are kept: writes this replica took are unacknowledged and no longer in its backlog')
      return
    }
    let removed = 0
    this.muted(() => {
      for (const key of this.store.keyList()) {
        if (!keysSeen.has(key) && !pending.has(key) && this.store.forget(key)) removed++
      }
    })
    if (removed > 0) this.logger.info({ removed }, 'after the full resync, removed keys the primary no longer holds')
  }

  /** Runs apply (a write from another region) with its log ops marked foreign, so that no region gets it back. */
  fromRegion(apply: () => void): void {
    const recorder = this.serve().recorder
    recorder.foreign = true
    try {
      apply()
    } finally {
      recorder.foreign = false
    }
  }

  private muted(apply: () => void): void {
    const recorder = this.serving?.recorder
    if (!recorder) return apply()
    recorder.muted = true
    try {
      apply()
    } finally {
      recorder.muted = false
    }
  }

  private snapshotApplied(peer: string, direction: 'upstream' | 'write-back', keysSeen: Set<string> | null): void {
    if (keysSeen) this.removeKeysThePrimaryLacks(keysSeen)
    if (direction !== 'write-back' || !this.warmingUp) return
    this.warmingUp = false
    if (this.warmupTimer) clearTimeout(this.warmupTimer)
    this.logger.info({ replica: peer, items: this.store.size }, 'warm-up done: ready')
  }
}

/** Encodes each store change as a log op (unless muted) and appends it. */
class ChangeRecorder implements StoreChangeListener {
  muted = false
  /** The changes being recorded came from another region. */
  foreign = false
  private readonly log: ReplicationLog
  private readonly logEvictions: boolean
  private readonly writer = new RespWriter()
  private readonly logged: () => void

  constructor(log: ReplicationLog, logEvictions: boolean, logged: () => void) {
    this.log = log
    this.logEvictions = logEvictions
    this.logged = logged
  }

  written(key: string, packed: string): void {
    if (this.muted) return
    writeChangeOp(this.writer, key, packed, Date.now())
    this.log.append(this.writer.take(), this.foreign)
    this.logged()
  }

  // A replica's own evictions are its business; a drop (a moved key) is a write every copy makes.
  evicted(key: string, packed: string, by: 'budget' | 'drop'): void {
    if (this.muted || (by === 'budget' && !this.logEvictions)) return
    command(this.writer, DROP, [key, String(entryVersion(packed))])
    this.log.append(this.writer.take())
    this.logged()
  }

  flushed(): void {
    if (this.muted) return
    command(this.writer, FLUSH, [])
    this.log.append(this.writer.take())
    this.logged()
  }
}
