// The sending end of replication: serves SL.SYNC on the data port with a partial resync from the
// backlog or a chunked snapshot, streams the log, reads acknowledgements and drops bad peers.
import type net from 'node:net'
import type { Logger } from '../common/logger.ts'
import { RespRequestParser } from '../common/resp-request-parser.ts'
import { RespWriter } from '../common/resp-writer.ts'
import { NOT_IN_BACKLOG, type ReplicationLog } from './replication-log.ts'
import { ACK, BARRIER, CONTINUE, FULLSYNC, HEARTBEAT, SNAPSHOT_BATCH_KEYS, SNAPSHOT_DONE, command, writeSnapshotBatch } from './replication-wire.ts'
import type { Store } from './store.ts'

export interface SourceSettings {
  heartbeatMs: number
  /** A peer that acknowledges nothing for this long is dropped. */
  timeoutMs: number
  /** A peer with more than this many bytes written to it and not yet taken is dropped. */
  maxPeerBufferBytes: number
}

export interface PeerState {
  peer: string
  state: 'snapshot' | 'streaming'
  ackedOffset: number
  lag: { ops: number; bytes: number; seconds: number }
  connectedSeconds: number
}

export type DropReason = 'garbage' | 'too_far_behind' | 'timeout'

/** Snapshot commands (of SNAPSHOT_BATCH_KEYS keys) written per event-loop turn. */
const SNAPSHOT_BATCHES_PER_TURN = 8
/** Above this many bytes queued on the socket, the snapshot waits for it to drain. */
const SNAPSHOT_HIGH_WATER_BYTES = 4 * 1024 * 1024
/** A barrier's token is the peer's own counter: anything longer is not one. */
const MAX_BARRIER_TOKEN_BYTES = 64

export class ReplicationSource {
  readonly counts = { fullSyncs: 0, partialSyncs: 0, dropped: { garbage: 0, too_far_behind: 0, timeout: 0 } as Record<DropReason, number> }
  private readonly store: Store
  private readonly log: ReplicationLog
  private readonly settings: SourceSettings
  private readonly logger: Logger
  private readonly peers = new Set<Peer>()
  private readonly heartbeat: NodeJS.Timeout
  private flushScheduled = false
  /** The furthest offset any peer has acknowledged. */
  private highestAck = 0

  constructor(store: Store, log: ReplicationLog, settings: SourceSettings, logger: Logger) {
    this.store = store
    this.log = log
    this.settings = settings
    this.logger = logger
    // Ops leave once per event-loop turn, as one write per peer, however many arrived in it.
    log.onAppend = () => {
      if (this.flushScheduled) return
      this.flushScheduled = true
      setImmediate(() => this.flush())
    }
    // One busy turn can append more than the backlog holds: what a peer was not sent yet goes
    // out before it is trimmed, instead of costing the peer a full resync.
    log.beforeTrim = (offset) => {
      for (const peer of this.peers) if (peer.sentOffset <= offset) this.sendLog(peer)
    }
    this.heartbeat = setInterval(() => this.beat(), settings.heartbeatMs)
    this.heartbeat.unref()
  }

  /**
   * Turns a connection that sent SL.SYNC into a replication feed: answers with CONTINUE and the
   * backlog from the asked offset, or with FULLSYNC, a snapshot and the log from its start.
   * The caller routes every later command on the socket to the returned receive function.
   */
  attach(socket: net.Socket, request: { replid: string; offset: number; peerName: string }): (args: Buffer[]) => void {
    const { replid, offset } = request
    const peer = new Peer(socket, request.peerName)
    this.peers.add(peer)
    socket.setNoDelay(true)
    socket.once('close', () => this.peers.delete(peer))
    const backlog = replid === this.log.replid ? this.log.readFrom(offset) : NOT_IN_BACKLOG
    const writer = new RespWriter()
    if (backlog !== NOT_IN_BACKLOG) {
      this.counts.partialSyncs++
      peer.state = 'streaming'
      peer.ackedOffset = offset
      command(writer, CONTINUE, [this.log.replid, String(offset)])
      writer.writeTo(socket)
      socket.cork()
      for (const op of backlog) socket.write(op)
      socket.uncork()
      peer.sentOffset = this.log.headOffset
      this.logger.info({ peer: peer.name, offset, ops: backlog.length }, 'replica resumed from the backlog (partial resync)')
    } else {
      this.counts.fullSyncs++
      peer.ackedOffset = this.log.headOffset
      peer.sentOffset = this.log.headOffset
      command(writer, FULLSYNC, [this.log.replid, String(this.log.headOffset)])
      writer.writeTo(socket)
      const keys = this.store.keyList()
      this.logger.info({ peer: peer.name, asked: { replid, offset }, keys: keys.length }, 'full resync: streaming a snapshot')
      this.pumpSnapshot(peer, keys, 0, writer)
    }
    return (args) => this.receive(peer, args)
  }

  /** Keys of the ops no peer has acknowledged yet; null when some of those ops left the backlog. */
  unacknowledgedKeys(): Set<string> | null {
    const ops = this.log.readFrom(this.highestAck)
    if (ops === NOT_IN_BACKLOG) return null
    const keys = new Set<string>()
    // The log holds this shard's own encoding of writes it accepted: no limit to enforce.
    const parser = new RespRequestParser({ maxBulkBytes: Number.MAX_SAFE_INTEGER, maxArrayLength: 16, maxInlineBytes: 64 * 1024 })
    for (const op of ops) parser.push(op, (args) => args[1] && keys.add(args[1].toString('latin1')))
    return keys
  }

  peerStates(): PeerState[] {
    const now = Date.now()
    return [...this.peers].map((peer) => ({
      peer: peer.name,
      state: peer.state,
      ackedOffset: peer.ackedOffset,
      lag: this.log.lagBehind(peer.ackedOffset),
      connectedSeconds: (now - peer.connectedAt) / 1000,
    }))
  }

  close(): void {
    clearInterval(this.heartbeat)
    for (const peer of this.peers) peer.socket.destroy()
  }

  // The snapshot walks the key list taken at FULLSYNC and sends each key's state when it gets
  // there; ops from FULLSYNC's offset on stream alongside, and versions make the order moot.
  private pumpSnapshot(peer: Peer, keys: string[], from: number, writer: RespWriter): void {
    const socket = peer.socket
    let index = from
    const batch: string[] = []
    // One socket write per turn, of up to SNAPSHOT_BATCHES_PER_TURN commands.
    for (let turn = 0; turn < SNAPSHOT_BATCHES_PER_TURN && index < keys.length && socket.writableLength < SNAPSHOT_HIGH_WATER_BYTES; turn++) {
      const end = Math.min(keys.length, index + SNAPSHOT_BATCH_KEYS)
      batch.length = 0
      for (; index < end; index++) {
        const packed = this.store.peekEntry(keys[index])
        if (packed !== undefined) batch.push(keys[index], packed)
      }
      if (batch.length === 0) continue
      writeSnapshotBatch(writer, batch, Date.now())
      peer.snapshotRecords += batch.length / 2
    }
    writer.writeTo(socket)
    if (socket.destroyed) return
    if (index < keys.length) {
      // Yield to clients between batches: a snapshot never stalls the shard.
      const resume = () => this.pumpSnapshot(peer, keys, index, writer)
      if (socket.writableLength >= SNAPSHOT_HIGH_WATER_BYTES) socket.once('drain', resume)
      else setImmediate(resume)
      return
    }
    command(writer, SNAPSHOT_DONE, [String(peer.snapshotRecords)])
    writer.writeTo(socket)
    peer.state = 'streaming'
    this.logger.info({ peer: peer.name, records: peer.snapshotRecords }, 'full resync: snapshot sent')
  }

  private flush(): void {
    this.flushScheduled = false
    for (const peer of this.peers) this.sendLog(peer)
  }

  private sendLog(peer: Peer): void {
    if (peer.sentOffset === this.log.headOffset) return
    const ops = this.log.readFrom(peer.sentOffset)
    if (ops === NOT_IN_BACKLOG) {
      this.drop(peer, 'too_far_behind', `the ops it still needs have left the ${this.log.maxBytes}-byte backlog`)
      return
    }
    peer.socket.write(ops.length === 1 ? ops[0] : Buffer.concat(ops))
    peer.sentOffset = this.log.headOffset
    if (peer.socket.writableLength > this.settings.maxPeerBufferBytes) {
      this.drop(peer, 'too_far_behind', `${peer.socket.writableLength} bytes are waiting for it to read`)
    }
  }

  private beat(): void {
    const now = Date.now()
    for (const peer of this.peers) {
      if (now - peer.lastAckAt > this.settings.timeoutMs) {
        this.drop(peer, 'timeout', `no acknowledgement for ${now - peer.lastAckAt} ms`)
        continue
      }
      this.sendHeartbeat(peer, now)
    }
  }

  // The log appended so far goes first: every op below the head a heartbeat names is sent before it.
  private sendHeartbeat(peer: Peer, now: number, barrierToken?: string): void {
    this.sendLog(peer)
    if (peer.socket.destroyed) return
    const writer = new RespWriter()
    const lag = this.log.lagBehind(peer.ackedOffset)
    command(writer, HEARTBEAT, [String(peer.sentOffset), String(lag.ops), String(lag.bytes), String(now), ...(barrierToken === undefined ? [] : [barrierToken])])
    writer.writeTo(peer.socket)
  }

  private receive(peer: Peer, args: Buffer[]): void {
    const name = args[0].toString('latin1').toUpperCase()
    if (name === BARRIER && args.length === 2 && args[1].length <= MAX_BARRIER_TOKEN_BYTES) {
      this.sendHeartbeat(peer, Date.now(), args[1].toString('latin1'))
      return
    }
    const offset = args.length === 2 ? Number(args[1].toString('latin1')) : NaN
    if (name !== ACK || !Number.isSafeInteger(offset) || offset < 0 || offset > this.log.headOffset) {
      this.drop(peer, 'garbage', `it sent ${JSON.stringify(args.map((a) => a.subarray(0, 64).toString('latin1')))} where only "${ACK} <offset>" belongs`)
      return
    }
    peer.ackedOffset = offset
    peer.lastAckAt = Date.now()
    this.highestAck = Math.max(this.highestAck, offset)
  }

  private drop(peer: Peer, reason: DropReason, why: string): void {
    if (peer.socket.destroyed) return
    this.counts.dropped[reason]++
    this.logger.warn({ peer: peer.name, reason }, `dropping replication peer: ${why}; it will reconnect and resync`)
    peer.socket.destroy()
    this.peers.delete(peer)
  }
}

class Peer {
  readonly socket: net.Socket
  readonly name: string
  readonly connectedAt = Date.now()
  state: 'snapshot' | 'streaming' = 'snapshot'
  ackedOffset = 0
  sentOffset = 0
  lastAckAt = Date.now()
  snapshotRecords = 0

  constructor(socket: net.Socket, name: string) {
    this.socket = socket
    this.name = name
  }
}
