// Ships a primary shard's writes to one peer region: a cursor over its replication log, local ops
// wrapped as SL.REGION.APPLY and pipelined to the peer's routers, and a full scan when the peer may lack data.
import { Backoff } from '../common/backoff.ts'
import { REGION_HELLO, REGION_USER, type RegionPeerConfig, type ShardRegionConfig } from '../common/region.ts'
import type { Logger } from '../common/logger.ts'
import { RespErrorReply, type RespReply } from '../common/resp-reply-parser.ts'
import { RespWriter } from '../common/resp-writer.ts'
import { ThrottledWarnings } from '../common/throttled-warning.ts'
import type { ClientTls } from '../common/tls-files.ts'
import { entryIsTombstone, rebaseExpiry } from './entry.ts'
import { RegionApplyEncoder, logOpKey, parseIncarnation, readLogOp, shippedInMode, type LogOp } from './region-ops.ts'
import { RegionLink } from './region-link.ts'
import type { ReplicationLog } from './replication-log.ts'
import { command } from './replication-wire.ts'
import type { Store } from './store.ts'

export interface ShipperOptions {
  region: ShardRegionConfig
  peer: RegionPeerConfig
  log: ReplicationLog
  store: Store
  logger: Logger
  tls: ClientTls | null
  /** The password to AUTH region with, read at each connect (a rotated file applies); null: no AUTH. */
  password: (() => string) | null
  /** A peer that leaves a command unanswered this long (or does not accept the connection) is cut off. */
  replyTimeoutMs: number
}

/** Sent and unanswered bytes past this stop the sending until replies come (one op always goes). */
export const SHIP_WINDOW_BYTES = 4 * 1024 * 1024
/** Keys a full scan looks at per event-loop turn: it yields to clients between slices. */
const SCAN_SLICE_KEYS = 512
const RETRY_MIN_MS = 100
const RETRY_MAX_MS = 5000
/**
 * Ops the peer could not apply yet (TRYAGAIN: its owning shard is unreachable or loading) are parked,
 * up to this many, and shipping goes on past them. Every op that crosses is apply-if-newer or a merge,
 * so a parked op applied after newer ones changes nothing they set. Past this, the link waits instead.
 */
export const PARKED_OPS_MAX = 10_000

type Sent =
  | { kind: 'auth'; generation: number; sentAt: number }
  | { kind: 'hello'; generation: number; sentAt: number }
  | { kind: 'op'; generation: number; sentAt: number; offset: number; op: Buffer; name: string; bytes: number; retry: boolean }
  | { kind: 'key'; generation: number; sentAt: number; index: number; key: string; bytes: number }

interface FullScan {
  reason: string
  keys: string[]
  /** The next key to look at for sending. */
  next: number
  /** Keys before this index were answered (or had no entry left): a resend starts here. */
  done: number
  /** The log from here on is shipped after the scan (ops during it go twice: harmless). */
  resumeOffset: number
  startedAt: number
}

export class RegionShipper {
  readonly counts = { shippedOps: 0, shippedBytes: 0, rejected: 0, resyncs: { partial: 0, full: 0 } }
  private readonly options: ShipperOptions
  private readonly link: RegionLink
  private readonly encoder: RegionApplyEncoder
  private readonly warnings: ThrottledWarnings
  private state: 'connecting' | 'handshake' | 'shipping' = 'connecting'
  /** The offset of the oldest log op not yet acknowledged by the peer (everything before it is). */
  private cursor: number
  /** The next log op to look at for sending. */
  private sentOffset: number
  private scan: FullScan | null = null
  /** Offsets of the local ops that cross, from about the cursor on (older ones are dropped lazily): the queue. */
  private unacknowledged: number[] = []
  private unacknowledgedHead = 0
  /** Commands written and not answered yet, in the order their replies come. */
  private inFlight: Sent[] = []
  private inFlightHead = 0
  /** Ops and scanned keys among them, and their bytes. */
  private outstanding = 0
  private outstandingBytes = 0
  /**
   * Bumped when what is in flight stops counting (a resend from an earlier point, a new scan): the
   * replies to older commands are read and dropped.
   */
  private generation = 0
  /** Current-generation ops and keys in flight. */
  private opsInFlight = 0
  private keysInFlight = 0
  /** Shard name → writer id as the peer last told them; null before its first HELLO answer. */
  private writers: Map<string, string> | null = null
  private incarnation: string | null = null
  private peerRegionId: number | null = null
  /** Waiting out a TRYAGAIN / LOADING before resending everything from the cursor (too much parked, or a scanned key). */
  private holdTimer: NodeJS.Timeout | null = null
  /** Offsets of parked ops waiting out their retry delay, ascending: all older than sentOffset. */
  private parked: number[] = []
  /** Parked ops whose delay is over, ascending: pumps send them before the log. */
  private due: number[] = []
  /** Parked ops sent again and not answered yet, in the order they were sent (and are answered). */
  private retrying: number[] = []
  private retryTimer: NodeJS.Timeout | null = null
  private readonly retry = new Backoff(RETRY_MIN_MS, RETRY_MAX_MS)
  private pumpScheduled = false
  private scanTimer: NodeJS.Timeout | null = null
  private scanTokens = 0
  private scanTokensAt = Date.now()
  private readonly helloTimer: NodeJS.Timeout
  private closed = false

  constructor(options: ShipperOptions) {
    this.options = options
    this.cursor = options.log.headOffset
    this.sentOffset = this.cursor
    this.encoder = new RegionApplyEncoder(options.region.name, options.region.pool)
    this.warnings = new ThrottledWarnings(options.logger)
    this.link = new RegionLink(options.peer.router, options.tls, options.replyTimeoutMs, {
      connected: () => this.handshake(),
      reply: (reply) => this.answered(reply),
      disconnected: (why) => this.disconnected(why),
      drained: () => this.schedulePump(),
    })
    this.helloTimer = setInterval(() => this.tick(), options.region.helloMs)
    this.helloTimer.unref()
  }

  get peer(): string {
    return this.options.peer.name
  }

  start(): void {
    this.link.start()
  }

  /** The log grew: ship it (once per event-loop turn, however many ops arrived in it). */
  logged(): void {
    const offset = this.options.log.headOffset - 1
    if (this.shippable(offset)) this.unacknowledged.push(offset)
    this.forgetAcknowledged()
    if (this.state !== 'shipping') this.passUnshipped()
    this.schedulePump()
  }

  get connected(): boolean {
    return this.state === 'shipping'
  }

  /** Age of the oldest op the peer has not acknowledged (during a scan: since the scan began); 0 when caught up. */
  lagSeconds(): number {
    return this.options.log.lagBehind(this.cursor).seconds
  }

  /** Local ops in the log that the peer has not acknowledged. */
  queuedOps(): number {
    this.forgetAcknowledged()
    return this.unacknowledged.length - this.unacknowledgedHead
  }

  /** Ops the peer answered TRYAGAIN or LOADING for, waiting for a retry (or being retried). */
  parkedOps(): number {
    return this.parked.length + this.due.length + this.retrying.length
  }

  describe(): Record<string, unknown> {
    const scan = this.scan
    return {
      peer: this.peer,
      router: this.options.peer.router,
      connected: this.connected,
      state: this.state,
      cursor: this.cursor,
      lagSeconds: this.lagSeconds(),
      queuedOps: this.queuedOps(),
      inFlight: this.outstanding,
      parkedOps: this.parkedOps(),
      peerRegionId: this.peerRegionId,
      incarnation: this.incarnation,
      scan: scan && { reason: scan.reason, keys: scan.keys.length, done: scan.done, next: scan.next },
      ...this.counts,
      resyncs: { ...this.counts.resyncs },
    }
  }

  close(): void {
    this.closed = true
    clearInterval(this.helloTimer)
    if (this.holdTimer) clearTimeout(this.holdTimer)
    if (this.retryTimer) clearTimeout(this.retryTimer)
    if (this.scanTimer) clearTimeout(this.scanTimer)
    this.link.close()
  }

  private handshake(): void {
    this.state = 'handshake'
    const writer = new RespWriter()
    const { password } = this.options
    if (password) {
      writer.arrayHeader(3)
      writer.bulkLatin1('AUTH')
      writer.bulkLatin1(REGION_USER)
      writer.bulkText(password())
      this.push({ kind: 'auth', generation: this.generation, sentAt: Date.now() })
    }
    this.writeHello(writer)
  }

  private writeHello(writer = new RespWriter()): void {
    const { region } = this.options
    command(writer, REGION_HELLO, [region.name, String(region.id), region.pool])
    this.push({ kind: 'hello', generation: this.generation, sentAt: Date.now() })
    this.link.write([writer.take()])
  }

  private tick(): void {
    const oldest = this.inFlight[this.inFlightHead]
    if (oldest !== undefined && Date.now() - oldest.sentAt > this.options.replyTimeoutMs) {
      this.link.cut(`no reply for ${this.options.replyTimeoutMs} ms`)
      return
    }
    if (this.state === 'shipping') this.writeHello()
  }

  private answered(reply: RespReply): void {
    const sent = this.inFlight[this.inFlightHead]
    if (sent === undefined) {
      this.link.cut('it sent a reply to nothing asked')
      return
    }
    this.inFlight[this.inFlightHead++] = undefined as unknown as Sent
    if (this.inFlightHead > 1024 && this.inFlightHead * 2 > this.inFlight.length) {
      this.inFlight = this.inFlight.slice(this.inFlightHead)
      this.inFlightHead = 0
    }
    if (sent.kind === 'auth' || sent.kind === 'hello') {
      if (sent.kind === 'auth') this.authAnswered(reply)
      else this.helloAnswered(reply)
      return
    }
    this.outstanding--
    this.outstandingBytes -= sent.bytes
    if (sent.generation === this.generation) {
      if (sent.kind === 'op') {
        this.opsInFlight--
        if (sent.retry) this.retrying.shift()
      } else {
        this.keysInFlight--
      }
      if (reply instanceof RespErrorReply && /^(TRYAGAIN|LOADING)\b/.test(reply.message)) {
        if (sent.kind === 'op' && this.parkedOps() < PARKED_OPS_MAX) this.park(sent.offset, reply.message)
        else this.resendLater(sent, reply.message)
        return
      }
      this.acknowledged(sent, reply)
    }
    this.schedulePump()
  }

  private authAnswered(reply: RespReply): void {
    if (reply === 'OK') return
    this.warnings.warn('region link: the peer region\'s routers refused this shard\'s password (region.peers[].password differs from their region.passwords?); retrying', { peer: this.peer, reply: describeReply(reply) })
    this.link.cut('AUTH refused')
  }

  private helloAnswered(reply: RespReply): void {
    const { peer, region } = this.options
    if (reply instanceof RespErrorReply) {
      this.warnings.warn('region link: the peer region\'s router refused HELLO; retrying', { peer: this.peer, reply: reply.message.slice(0, 200) })
      this.link.cut('HELLO refused')
      return
    }
    const writers = Array.isArray(reply) && reply.length === 3 && Buffer.isBuffer(reply[0]) && typeof reply[1] === 'number' && Buffer.isBuffer(reply[2]) ? parseIncarnation(reply[2].toString('latin1')) : null
    if (writers === null) {
      this.link.cut(`its HELLO reply is not [region, id, incarnation]: ${describeReply(reply)}`)
      return
    }
    const [name, id] = [(reply as Buffer[])[0].toString('latin1'), (reply as number[])[1]]
    if (name !== peer.name || id === region.id) {
      this.warnings.warn('region link: the router at this peer\'s address is not that region (or has this region\'s id); retrying', { peer: this.peer, router: peer.router, answered: { name, id }, own: region.id })
      this.link.cut('wrong region')
      return
    }
    this.peerRegionId = id
    this.incarnation = (reply as Buffer[])[2].toString('latin1')
    const firstContact = this.writers === null
    const restarted = this.learnWriters(writers)
    if (this.state === 'handshake') this.begin(firstContact, restarted)
    else if (restarted !== null) this.startScan(`peer shard ${restarted} restarted`)
    this.schedulePump()
  }

  // The first answer on a connection: a full scan, a scan resumed, or the log from the cursor.
  private begin(firstContact: boolean, restarted: string | null): void {
    this.state = 'shipping'
    this.link.healthy()
    let resync = 'full'
    if (firstContact) this.startScan('first contact')
    else if (restarted !== null) this.startScan(`peer shard ${restarted} restarted`)
    else if (this.scan !== null) resync = 'scan resumed'
    else if (this.cursor < this.options.log.firstOffset) this.startScan('the cursor left the backlog')
    else {
      resync = 'partial'
      this.counts.resyncs.partial++
    }
    this.options.logger.info({ peer: this.peer, router: this.options.peer.router, peerRegionId: this.peerRegionId, incarnation: this.incarnation, cursor: this.cursor, resync }, 'region link connected')
  }

  /** Takes in a HELLO's writer ids; returns a shard whose id changed (it restarted, and may have lost data), or null. */
  private learnWriters(latest: Map<string, string>): string | null {
    const known = this.writers ?? new Map<string, string>()
    let restarted: string | null = null
    for (const [shard, writer] of latest) {
      if (writer === '?') continue
      const before = known.get(shard)
      if (before !== undefined && before !== writer) restarted ??= shard
      known.set(shard, writer)
    }
    this.writers = known
    return restarted
  }

  private acknowledged(sent: Extract<Sent, { kind: 'op' | 'key' }>, reply: RespReply): void {
    this.counts.shippedOps++
    this.counts.shippedBytes += sent.bytes
    // While ops are parked, other shards' answers say nothing about the one that refused.
    if ((sent.kind === 'op' && sent.retry) || this.parkedOps() === 0) this.retry.reset()
    if (reply instanceof RespErrorReply) {
      this.counts.rejected++
      const key = sent.kind === 'op' ? logOpKey(sent.op) : sent.key
      this.warnings.warn('region link: the peer region refused an op for good; skipped', { peer: this.peer, op: sent.kind === 'op' ? sent.name : 'SL.PUTV', key: key.slice(0, 128), reply: reply.message.slice(0, 200), rejected: this.counts.rejected })
    }
    if (sent.kind === 'key') {
      this.scan!.done = Math.max(this.scan!.done, sent.index + 1)
      this.finishScanIfDone()
      return
    }
    this.cursor = this.oldestUnacknowledged()
  }

  private oldestParked(): number {
    return Math.min(this.parked[0] ?? Infinity, this.due[0] ?? Infinity, this.retrying[0] ?? Infinity)
  }

  /** The oldest op not acknowledged: parked ops are older than any other in flight. */
  private oldestUnacknowledged(): number {
    return Math.min(this.oldestParked(), this.firstOpInFlight() ?? this.sentOffset)
  }

  private park(offset: number, why: string): void {
    // Usually the newest; a retried op that is refused again may be older than some parked since.
    let at = this.parked.length
    while (at > 0 && this.parked[at - 1] > offset) at--
    this.parked.splice(at, 0, offset)
    this.cursor = this.oldestUnacknowledged()
    this.warnings.warn('region link: the peer region cannot apply some ops now (their owning shard is unreachable or loading); parked for a retry, the others go on', { peer: this.peer, parked: this.parkedOps(), reply: why.slice(0, 200) })
    if (this.retryTimer !== null) return
    // One round per delay: the ops parked when it ends are sent once; those refused again wait anew.
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      this.due = [...this.due, ...this.parked].sort((a, b) => a - b)
      this.parked = []
      this.schedulePump()
    }, this.retry.next())
  }

  /** Sends the parked ops whose delay is over, oldest first, as many as the window takes. */
  private sendDue(pieces: Buffer[]): void {
    const { log } = this.options
    if (this.due[0] < log.firstOffset) {
      this.warnings.warn('region link: parked ops left the replication backlog before the peer could apply them; shipping everything by a full scan', { peer: this.peer, parked: this.parkedOps(), firstOffset: log.firstOffset })
      this.startScan('parked ops left the backlog')
      this.schedulePump()
      return
    }
    const now = Date.now()
    let sent = 0
    while (sent < this.due.length && this.hasRoom()) {
      const offset = this.due[sent++]
      const op = log.opAt(offset)
      this.sendOp(pieces, offset, op, readLogOp(op), now, true)
      this.retrying.push(offset)
    }
    this.due.splice(0, sent)
  }

  // Replies come in order, so ops after the refused one may have been applied: resending them is harmless.
  // Parked ops are older and unacknowledged: the resend starts at the oldest of them.
  private resendLater(sent: Extract<Sent, { kind: 'op' | 'key' }>, why: string): void {
    const from = Math.min(this.oldestParked(), sent.kind === 'op' ? sent.offset : Infinity)
    this.rewind()
    if (sent.kind === 'op') {
      this.sentOffset = from
      this.cursor = from
    }
    this.warnings.warn('region link: the peer region cannot apply ops now (its owning shard is unreachable or loading); resending', { peer: this.peer, reply: why.slice(0, 200) })
    if (this.holdTimer) return
    const delay = this.retry.next()
    this.holdTimer = setTimeout(() => {
      this.holdTimer = null
      this.schedulePump()
    }, delay)
  }

  // Forgets what is in flight: the next send starts from the first thing not acknowledged.
  private rewind(): void {
    this.generation++
    this.opsInFlight = 0
    this.keysInFlight = 0
    this.forgetParked()
    const scan = this.scan
    if (scan !== null) {
      scan.next = scan.done
      this.sentOffset = scan.resumeOffset
    } else {
      this.sentOffset = this.cursor
    }
  }

  private disconnected(why: string): void {
    const wasShipping = this.state === 'shipping'
    this.state = 'connecting'
    this.inFlight = []
    this.inFlightHead = 0
    this.outstanding = 0
    this.outstandingBytes = 0
    this.rewind()
    if (this.holdTimer) clearTimeout(this.holdTimer)
    this.holdTimer = null
    if (this.closed) return
    if (wasShipping) this.options.logger.warn({ peer: this.peer, router: this.options.peer.router, why, cursor: this.cursor }, 'region link lost; reconnecting')
    else this.warnings.warn('region link: cannot reach the peer region\'s routers; retrying', { peer: this.peer, router: this.options.peer.router, why })
  }

  private startScan(reason: string): void {
    const { log, store } = this.options
    this.generation++
    this.opsInFlight = 0
    this.keysInFlight = 0
    // The scan sends every key's entry as it is now: what was parked is in it.
    this.forgetParked()
    const keys = store.keyList()
    this.scan = { reason, keys, next: 0, done: 0, resumeOffset: log.headOffset, startedAt: Date.now() }
    this.cursor = log.headOffset
    this.sentOffset = log.headOffset
    this.counts.resyncs.full++
    this.options.logger.info({ peer: this.peer, reason, keys: keys.length }, 'region full scan started')
  }

  // The cursor is at or before the oldest parked op, so shipping again from it covers them.
  private forgetParked(): void {
    this.parked = []
    this.due = []
    this.retrying = []
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.retryTimer = null
  }

  private finishScanIfDone(): void {
    const scan = this.scan
    if (scan === null || scan.next < scan.keys.length || this.keysInFlight > 0) return
    this.scan = null
    this.options.logger.info({ peer: this.peer, reason: scan.reason, keys: scan.keys.length, seconds: (Date.now() - scan.startedAt) / 1000 }, 'region full scan finished')
    this.cursor = this.oldestUnacknowledged()
  }

  /** The first op in flight that is not a retry (retries are older than all of them), or null. */
  private firstOpInFlight(): number | null {
    for (let i = this.inFlightHead; i < this.inFlight.length; i++) {
      const sent = this.inFlight[i]
      if (sent.generation === this.generation && sent.kind === 'op' && !sent.retry) return sent.offset
      if (sent.generation === this.generation && sent.kind === 'key') return null
    }
    return null
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return
    this.pumpScheduled = true
    setImmediate(() => {
      this.pumpScheduled = false
      this.pump()
    })
  }

  // One socket write per turn: scanned keys first (a slice, within the scan's rate), else parked ops
  // whose wait is over, then the log.
  private pump(): void {
    if (this.state !== 'shipping' || this.holdTimer !== null) return
    const pieces: Buffer[] = []
    const scan = this.scan
    if (scan !== null && scan.next < scan.keys.length) this.sendScanSlice(scan, pieces)
    else {
      if (this.due.length > 0) this.sendDue(pieces)
      this.sendLog(pieces)
    }
    this.link.write(pieces)
    this.finishScanIfDone()
    if (this.scan !== null && this.scan.next < this.scan.keys.length && this.hasRoom() && this.scanTimer === null) this.schedulePump()
  }

  private hasRoom(): boolean {
    return this.outstanding < this.options.region.maxInFlightOps && this.outstandingBytes < SHIP_WINDOW_BYTES && this.link.writableLength < SHIP_WINDOW_BYTES
  }

  private sendScanSlice(scan: FullScan, pieces: Buffer[]): void {
    const { store, region } = this.options
    const now = Date.now()
    const rate = region.scanKeysPerSecond
    this.scanTokens = Math.min(Math.max(1, Math.min(SCAN_SLICE_KEYS, rate / 10)), this.scanTokens + ((now - this.scanTokensAt) * rate) / 1000)
    this.scanTokensAt = now
    let looked = 0
    while (scan.next < scan.keys.length && looked < SCAN_SLICE_KEYS && this.scanTokens >= 1 && this.hasRoom()) {
      const index = scan.next++
      const key = scan.keys[index]
      looked++
      this.scanTokens--
      const packed = store.peekEntry(key)
      if (packed === undefined || (region.mode === 'invalidate' && !entryIsTombstone(packed))) continue
      const bytes = this.encoder.scanned(key, rebaseExpiry(packed, now, 0))
      pieces.push(bytes)
      this.keysInFlight++
      this.push({ kind: 'key', generation: this.generation, sentAt: now, index, key, bytes: bytes.length })
    }
    // Keys without an entry any more are passed without a reply to wait for.
    if (looked > 0 && this.keysInFlight === 0) scan.done = scan.next
    if (scan.next < scan.keys.length && this.scanTokens < 1 && this.scanTimer === null) {
      this.scanTimer = setTimeout(() => {
        this.scanTimer = null
        this.schedulePump()
      }, Math.ceil(((1 - this.scanTokens) * 1000) / rate))
    }
  }

  private sendLog(pieces: Buffer[]): void {
    const { log } = this.options
    if (this.sentOffset < log.firstOffset) {
      this.warnings.warn('region link: ops not yet shipped left the replication backlog (replication.backlogBytes too small for this lag?); shipping everything by a full scan', { peer: this.peer, cursor: this.sentOffset, firstOffset: log.firstOffset })
      this.startScan('the cursor left the backlog')
      this.schedulePump()
      return
    }
    const now = Date.now()
    while (this.sentOffset < log.headOffset && this.hasRoom()) {
      const offset = this.sentOffset++
      if (log.isForeign(offset)) continue
      const op = log.opAt(offset)
      const parsed = readLogOp(op)
      if (shippedInMode(this.options.region.mode, parsed.name)) this.sendOp(pieces, offset, op, parsed, now, false)
    }
    // During a scan the cursor stays where the scan began until its last key is answered.
    if (this.opsInFlight === 0 && this.scan === null) this.cursor = this.oldestUnacknowledged()
  }

  private sendOp(pieces: Buffer[], offset: number, op: Buffer, parsed: LogOp, now: number, retry: boolean): void {
    const wrapped = this.encoder.wrap(op, parsed)
    const bytes = wrapped[0].length + wrapped[1].length + wrapped[2].length
    pieces.push(...wrapped)
    this.opsInFlight++
    this.push({ kind: 'op', generation: this.generation, sentAt: now, offset, op, name: parsed.name, bytes, retry })
  }

  // While no link ships, ops that would never be shipped are passed at once: they are not lag.
  private passUnshipped(): void {
    const { log } = this.options
    if (this.scan !== null || this.sentOffset !== this.cursor || this.sentOffset < log.firstOffset) return
    while (this.sentOffset < log.headOffset && !this.shippable(this.sentOffset)) this.sentOffset++
    this.cursor = this.sentOffset
  }

  private forgetAcknowledged(): void {
    const below = Math.max(this.cursor, this.options.log.firstOffset)
    while (this.unacknowledgedHead < this.unacknowledged.length && this.unacknowledged[this.unacknowledgedHead] < below) this.unacknowledgedHead++
    if (this.unacknowledgedHead > 1024 && this.unacknowledgedHead * 2 > this.unacknowledged.length) {
      this.unacknowledged = this.unacknowledged.slice(this.unacknowledgedHead)
      this.unacknowledgedHead = 0
    }
  }

  private shippable(offset: number): boolean {
    const { log } = this.options
    return !log.isForeign(offset) && shippedInMode(this.options.region.mode, readLogOp(log.opAt(offset)).name)
  }

  private push(sent: Sent): void {
    this.inFlight.push(sent)
    if (sent.kind === 'op' || sent.kind === 'key') {
      this.outstanding++
      this.outstandingBytes += sent.bytes
    }
  }
}

/** A reply as a short text for a log line. */
function describeReply(reply: RespReply): string {
  if (reply instanceof RespErrorReply) return `-${reply.message.slice(0, 200)}`
  if (Array.isArray(reply)) return `[${reply.slice(0, 8).map(describeReply).join(', ')}]`.slice(0, 200)
  return Buffer.isBuffer(reply) ? JSON.stringify(reply.toString('latin1', 0, 200)) : String(reply)
}
