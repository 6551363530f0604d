// The receiving end of replication: connects to a peer's data port (over TLS, and authenticated as
// the internal user, when the shard has them), asks to continue from its offset, applies the snapshot
// and the log through versioned writes, acknowledges, reconnects.
import { Backoff } from '../common/backoff.ts'
import net from 'node:net'
import tls from 'node:tls'
import { INTERNAL_USER } from '../common/secrets.ts'
import type { ClientTls } from '../common/tls-files.ts'
import type { Logger } from '../common/logger.ts'
import { RespProtocolError, RespRequestParser } from '../common/resp-request-parser.ts'
import { RespWriter } from '../common/resp-writer.ts'
import {
  ACK, BARRIER, CONTINUE, DELETE_VERSIONED, DROP, FLUSH, FULLSYNC, HEARTBEAT, PUT_ENTRY, SET_VERSIONED, SNAPSHOT_DONE,
  SNAPSHOT, SNAPSHOT_BATCH_KEYS, SYNC, command,
} from './replication-wire.ts'
import { receivedEntry } from './received-entry.ts'
import { StoreError, type Store, type WriteOptions } from './store.ts'
import { ThrottledWarning } from '../common/throttled-warning.ts'

export interface LinkOptions {
  /** host:port of the peer's data port. */
  peer: string
  /** upstream: this shard is the peer's replica. write-back: the peer is this primary's replica. */
  direction: 'upstream' | 'write-back'
  /** How this shard names itself to the peer (its logs and /stats show it), once it listens. */
  selfName(): string
  store: Store
  /** Runs apply with the store's change recorder muted or not, as the direction needs. */
  applying(apply: () => void): void
  timeoutMs: number
  maxValueBytes: number
  log: Logger
  /**
   * Called when a full snapshot from the peer has been applied, with every key the snapshot and
   * the ops alongside it carried (upstream links only; null for write-back).
   */
  onSnapshotApplied(keysSeen: Set<string> | null): void
  /** Verifies the peer's certificate; null: plain TCP. */
  tls: ClientTls | null
  /** The internal password to AUTH with, read at each connect (a rotated file applies); null: no AUTH. */
  password: (() => string) | null
}

/** At most one acknowledgement per this many ms (plus one per heartbeat). */
const ACK_INTERVAL_MS = 2
/**
 * While data keeps arriving (a long snapshot ahead of the next heartbeat in the stream), an
 * acknowledgement at least this often tells the source the peer is alive.
 */
const ACK_KEEPALIVE_MS = 100
/** A source heartbeats every 100 ms by default: past this without one, the silence is lag. */
export const SILENCE_MS = 1000
const RECONNECT_MIN_MS = 100
const RECONNECT_MAX_MS = 2000

export class LinkError extends Error {}

export class ReplicationLink {
  readonly options: LinkOptions
  state: 'connecting' | 'snapshot' | 'streaming' = 'connecting'
  /** refused: ops and snapshot records the store would not take (a version or TTL out of range), skipped. */
  readonly counts = { fullSyncs: 0, partialSyncs: 0, dropped: 0, opsApplied: 0, snapshotRecords: 0, refused: 0 }
  lastFullSync: { records: number; seconds: number } | null = null
  /** When the link last stopped being synced (or was created); null while it is synced. */
  downSince: number | null = Date.now()
  /** When the peer last sent anything (0 before it ever did). */
  lastHeardAt = 0
  private replid = '?'
  /** The log last synced from, kept when replid is forgotten: tells a restarted peer from the same one. */
  private lastSyncedReplid: string | null = null
  private offset = -1
  /** The last heartbeat: the source's view of this peer's lag, and how late it arrived here. */
  private heartbeat = { ops: 0, bytes: 0, sentAt: 0, receivedAt: 0 }
  private socket: net.Socket | null = null
  private closed = false
  private readonly backoff = new Backoff(RECONNECT_MIN_MS, RECONNECT_MAX_MS)
  private reconnectTimer: NodeJS.Timeout | null = null
  private ackTimer: NodeJS.Timeout | null = null
  private lastAckAt = 0
  private ackedOffset = -1
  private snapshotStartedAt = 0
  private keysSeen: Set<string> | null = null
  private readonly refusedWarning: ThrottledWarning
  private readonly authWarning: ThrottledWarning
  private readonly tlsWarning: ThrottledWarning
  /**
   * What a catch-up waits for: the peer's head offset, answered to this barrier's token on the
   * current connection (null until then), and applied here.
   */
  private barrier: { token: string; sent: boolean; head: number | null; passed: () => void } | null = null
  private barriersIssued = 0

  constructor(options: LinkOptions) {
    this.options = options
    this.refusedWarning = new ThrottledWarning(options.log, 'replication: skipped what the peer sent that this store refuses (are the clocks more than maxVersionDriftMs apart?)')
    this.tlsWarning = new ThrottledWarning(options.log, 'replication link: the TLS handshake with the peer failed (does tls.peers.ca sign its certificate, for this name?); retrying')
    this.authWarning = new ThrottledWarning(options.log, 'replication link: the peer refused this shard\'s internal password (auth.internalPasswords differ?); retrying')
  }

  start(): void {
    this.connect()
  }

  /**
   * Reconnects now if the link waits out a backoff: its peer just connected to this shard, so it is
   * back (a restarted primary warming up from its replica), and every backoff millisecond more is
   * a window where routers read this replica without the writes that primary takes.
   */
  retryNow(): void {
    if (this.closed || this.reconnectTimer === null || this.state !== 'connecting') return
    clearTimeout(this.reconnectTimer)
    this.reconnectTimer = null
    this.backoff.reset()
    this.connect()
  }

  close(): void {
    this.closed = true
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    if (this.ackTimer) clearTimeout(this.ackTimer)
    this.socket?.destroy()
  }

  /**
   * Calls passed once this link has applied every op its peer's log held when the peer answered
   * a barrier sent from now on: at once if the link is synced, else once it syncs again. Replaces
   * any barrier still waiting.
   */
  awaitBarrier(passed: () => void): void {
    this.barrier = { token: String(++this.barriersIssued), sent: false, head: null, passed }
    this.sendBarrier()
  }

  cancelBarrier(): void {
    this.barrier = null
  }

  /** The offset of the next op this end expects (-1 before the first sync). */
  get appliedOffset(): number {
    return this.offset
  }

  /**
   * Lag as this end sees it. Everything the source sent before its last heartbeat has been applied
   * when the heartbeat is, so the heartbeat's delay bounds the lag; while none arrives (a hung or
   * cut-off source) the lag grows with the silence. Ops and bytes are the source's count of what
   * was not acknowledged yet.
   */
  lag(): { ops: number; bytes: number; seconds: number } {
    const { ops, bytes, sentAt, receivedAt } = this.heartbeat
    if (receivedAt === 0) return { ops, bytes, seconds: 0 }
    const now = Date.now()
    const delay = Math.max(0, receivedAt - sentAt)
    const silence = now - receivedAt > SILENCE_MS ? now - receivedAt : 0
    return { ops, bytes, seconds: (delay + silence) / 1000 }
  }

  describe(): Record<string, unknown> {
    return { peer: this.options.peer, direction: this.options.direction, state: this.state, replid: this.replid, offset: this.offset, lag: this.lag(), ...this.counts, lastFullSync: this.lastFullSync }
  }

  private connect(): void {
    const [host, port] = splitAddress(this.options.peer)
    const { tls: clientTls, password } = this.options
    const socket = clientTls ? tls.connect({ host, port, ...clientTls.connectOptions(host) }).setNoDelay(true) : net.connect({ host, port, noDelay: true })
    this.socket = socket
    const parser = new RespRequestParser({ maxBulkBytes: this.options.maxValueBytes + 64 * 1024, maxArrayLength: 2 * SNAPSHOT_BATCH_KEYS + 1, maxInlineBytes: 64 * 1024 })
    // AUTH and SL.SYNC go together; the AUTH reply (one line) is read before the replication stream.
    const authReply = password ? new ReplyLine() : null
    socket.setTimeout(this.options.timeoutMs)
    let connected = false
    socket.on(clientTls ? 'secureConnect' : 'connect', () => {
      connected = true
      const writer = new RespWriter()
      if (password) {
        writer.arrayHeader(3)
        writer.bulkLatin1('AUTH')
        writer.bulkLatin1(INTERNAL_USER)
        writer.bulkText(password())
      }
      command(writer, SYNC, [this.replid, String(this.offset), this.options.selfName()])
      writer.writeTo(socket)
    })
    socket.on('data', (data: Buffer) => {
      this.lastHeardAt = Date.now()
      let chunk = data
      if (authReply && !authReply.done) {
        const rest = authReply.push(chunk)
        if (rest === null) return
        if (authReply.line !== '+OK') {
          this.authWarning.warn({ peer: this.options.peer, direction: this.options.direction, reply: authReply.line.slice(0, 120) })
          socket.destroy()
          return
        }
        chunk = rest
      }
      try {
        parser.push(chunk, (args) => this.handle(args))
      } catch (error) {
        if (error instanceof LinkError || error instanceof RespProtocolError) {
          this.options.log.warn({ peer: this.options.peer, direction: this.options.direction, error: error.message }, 'replication link dropped: the peer sent something that is not replication; reconnecting for a full resync')
        } else {
          // A bug, not the peer's doing: this link starts over rather than the process ending.
          this.options.log.error({ peer: this.options.peer, direction: this.options.direction, err: error }, 'replication link failed unexpectedly; reconnecting for a full resync')
        }
        this.counts.dropped++
        this.replid = '?'
        socket.destroy()
        return
      }
      this.checkBarrier()
      this.acknowledge(false)
    })
    socket.on('timeout', () => {
      this.options.log.warn({ peer: this.options.peer, direction: this.options.direction, timeoutMs: this.options.timeoutMs }, 'replication link silent for too long; reconnecting')
      socket.destroy()
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A peer not up yet refuses the connection: that is no TLS problem.
      if (clientTls && !connected && error.code !== 'ECONNREFUSED' && error.code !== 'ECONNRESET') {
        this.tlsWarning.warn({ peer: this.options.peer, direction: this.options.direction, error: error.message })
      }
      socket.destroy()
    })
    socket.on('close', () => this.disconnected(socket))
  }

  private disconnected(socket: net.Socket): void {
    if (this.socket !== socket) return
    this.socket = null
    // A link that never synced (its peer not up yet) reconnects quietly.
    if (this.state !== 'connecting') {
      this.options.log.warn({ peer: this.options.peer, direction: this.options.direction, offset: this.offset, state: this.state }, 'replication link lost; reconnecting')
      this.downSince = Date.now()
    }
    // An answer on the next connection may follow a full resync, with offsets of another log.
    if (this.barrier) this.barrier = { ...this.barrier, token: String(++this.barriersIssued), sent: false, head: null }
    // A snapshot cut short leaves keys missing that no later op will bring: only a new full
    // resync can, so the offset is forgotten.
    if (this.state === 'snapshot') this.replid = '?'
    this.keysSeen = null
    this.state = 'connecting'
    if (this.closed) return
    const delay = this.backoff.next()
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null
      this.connect()
    }, delay)
  }

  private handle(args: Buffer[]): void {
    const name = args[0].toString('latin1')
    const { store } = this.options
    switch (name) {
      case SET_VERSIONED:
        this.applyOp(() => store.set(this.see(text(args, 1)), bytes(args, 2), { ...parseSetOptions(args), version: integer(args, 3) }))
        return
      case DELETE_VERSIONED:
        this.applyOp(() => store.deleteVersioned(this.see(text(args, 1)), integer(args, 2)))
        return
      case DROP:
        this.applyOp(() => store.dropIfNotNewer(this.see(text(args, 1)), integer(args, 2)))
        return
      case PUT_ENTRY:
        this.applyOp(() => store.restore(this.see(text(args, 1)), this.entryArgument(args, 2)))
        return
      case FLUSH:
        this.applyOp(() => store.clear())
        return
      case SNAPSHOT:
        this.restoreSnapshotBatch(args)
        return
      case HEARTBEAT:
        this.heartbeat = { ops: integer(args, 2), bytes: integer(args, 3), sentAt: integer(args, 4), receivedAt: Date.now() }
        if (this.barrier !== null && args.length > 5 && text(args, 5) === this.barrier.token) this.barrier.head = integer(args, 1)
        this.acknowledge(true)
        return
      case FULLSYNC:
      case CONTINUE:
        this.synced(name, text(args, 1), integer(args, 2))
        return
      case SNAPSHOT_DONE: {
        const seconds = (Date.now() - this.snapshotStartedAt) / 1000
        this.lastFullSync = { records: integer(args, 1), seconds }
        this.state = 'streaming'
        this.options.log.info({ peer: this.options.peer, direction: this.options.direction, records: this.lastFullSync.records, seconds }, 'full resync applied')
        const keysSeen = this.keysSeen
        this.keysSeen = null
        this.options.onSnapshotApplied(keysSeen)
        return
      }
      default:
        throw new LinkError(`unexpected ${JSON.stringify(name.slice(0, 64))}`)
    }
  }

  private synced(kind: string, replid: string, offset: number): void {
    if (this.state !== 'connecting') throw new LinkError(`${kind} in the middle of a stream`)
    this.backoff.reset()
    const samePeerProcess = replid === this.lastSyncedReplid
    this.replid = replid
    this.lastSyncedReplid = replid
    this.offset = offset
    if (kind === FULLSYNC) {
      this.counts.fullSyncs++
      this.state = 'snapshot'
      this.snapshotStartedAt = Date.now()
      // Keys the snapshot lacks are removed afterwards only when it comes from the same primary
      // process (this replica missed too much of its log): a restarted primary starts empty and
      // is itself warming up from this replica.
      if (this.options.direction === 'upstream' && samePeerProcess) this.keysSeen = new Set()
    } else {
      this.counts.partialSyncs++
      this.state = 'streaming'
    }
    this.options.log.info({ peer: this.options.peer, direction: this.options.direction, replid, offset, kind: kind === FULLSYNC ? 'full' : 'partial' }, 'replication link synced')
    this.downSince = null
    this.sendBarrier()
  }

  private sendBarrier(): void {
    const barrier = this.barrier
    if (barrier === null || barrier.sent || this.socket === null || this.state === 'connecting') return
    const writer = new RespWriter()
    command(writer, BARRIER, [barrier.token])
    writer.writeTo(this.socket)
    barrier.sent = true
  }

  // Ops arrive in log order and the answer after every op below its head: once the snapshot (if
  // any) is done and the offset reached the head, this end holds what the peer held when it answered.
  private checkBarrier(): void {
    const barrier = this.barrier
    if (barrier === null || barrier.head === null || this.state !== 'streaming' || this.offset < barrier.head) return
    this.barrier = null
    barrier.passed()
  }

  private restoreSnapshotBatch(args: Buffer[]): void {
    if (this.state !== 'snapshot' || args.length % 2 === 0) throw new LinkError(`${SNAPSHOT} out of a snapshot or without an entry for every key`)
    const now = Date.now()
    this.options.applying(() => {
      for (let i = 1; i < args.length; i += 2) {
        this.refusable(() => this.options.store.restore(this.see(args[i].toString('latin1')), this.entryArgument(args, i + 1, now)))
      }
    })
    this.counts.snapshotRecords += (args.length - 1) / 2
  }

  // A packed entry sent with its expiry as time left, made absolute on this clock; a malformed
  // one is refused like any entry the store refuses (a resync would only bring it again).
  private entryArgument(args: Buffer[], index: number, now = Date.now()): string {
    return receivedEntry(text(args, index), now)
  }

  // During an upstream snapshot, remembers each key it carried (see Replication.snapshotApplied).
  private see(key: string): string {
    this.keysSeen?.add(key)
    return key
  }

  // An op the store refuses is skipped but still counted in the offset: the stream goes on.
  private applyOp(apply: () => void): void {
    if (this.state === 'connecting') throw new LinkError('a log op before SL.FULLSYNC or SL.CONTINUE')
    this.options.applying(() => this.refusable(apply))
    this.offset++
    this.counts.opsApplied++
  }

  private refusable(apply: () => void): void {
    try {
      apply()
    } catch (error) {
      if (!(error instanceof StoreError)) throw error
      this.counts.refused++
      this.refusedWarning.warn({ peer: this.options.peer, direction: this.options.direction, error: error.message, refused: this.counts.refused })
    }
  }

  // Acknowledges the offset reached, at most once per ACK_INTERVAL_MS (a trailing timer sends
  // the last one), and always when asked by a heartbeat so the source knows the link is alive.
  private acknowledge(always: boolean): void {
    const socket = this.socket
    if (socket === null || this.offset < 0 || this.state === 'connecting') return
    if (!always && this.offset === this.ackedOffset && Date.now() - this.lastAckAt < ACK_KEEPALIVE_MS) return
    const waitMs = this.lastAckAt + ACK_INTERVAL_MS - Date.now()
    if (!always && waitMs > 0) {
      this.ackTimer ??= setTimeout(() => {
        this.ackTimer = null
        this.acknowledge(false)
      }, waitMs)
      return
    }
    const writer = new RespWriter()
    command(writer, ACK, [String(this.offset)])
    writer.writeTo(socket)
    this.ackedOffset = this.offset
    this.lastAckAt = Date.now()
  }
}

/** The first reply line on a connection (AUTH's), gathered across reads, with what follows it. */
class ReplyLine {
  line = ''
  done = false
  private held: Buffer = Buffer.alloc(0)

  /** The bytes after the line once it is complete; null while it is not. */
  push(chunk: Buffer): Buffer | null {
    this.held = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk])
    const end = this.held.indexOf('\r\n')
    // A peer that answers no line in a sane length is no shard: that is its reply.
    if (end < 0 && this.held.length <= 1024) return null
    this.line = end < 0 ? 'a reply without a line end' : this.held.toString('latin1', 0, end)
    this.done = true
    return end < 0 ? Buffer.alloc(0) : this.held.subarray(end + 2)
  }
}

function bytes(args: Buffer[], index: number): Buffer {
  const arg = args[index]
  if (arg === undefined) throw new LinkError(`argument ${index} missing from ${args[0].toString('latin1')}`)
  return arg
}

function text(args: Buffer[], index: number): string {
  return bytes(args, index).toString('latin1')
}

function integer(args: Buffer[], index: number): number {
  const value = Number(text(args, index))
  if (!Number.isSafeInteger(value)) throw new LinkError(`argument ${index} of ${args[0].toString('latin1')} is not an integer`)
  return value
}

// The options of a replicated SL.SETV: PX ms and FLAGS n, as writeChangeOp produces them.
function parseSetOptions(args: Buffer[]): WriteOptions {
  const options: WriteOptions = {}
  for (let i = 4; i < args.length; i += 2) {
    const option = text(args, i)
    if (option === 'PX') options.ttlMs = integer(args, i + 1)
    else if (option === 'FLAGS') options.flags = integer(args, i + 1)
    else throw new LinkError(`unknown SL.SETV option ${JSON.stringify(option.slice(0, 32))}`)
  }
  return options
}

export function splitAddress(address: string): [string, number] {
  const at = address.lastIndexOf(':')
  return [address.slice(0, at), Number(address.slice(at + 1))]
}
