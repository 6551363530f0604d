// One persistent RESP connection from the router to a shard: over TLS and authenticated when
// configured, pipelined requests, every command queued in one event-loop turn leaving in one write,
// per-op timeouts, reconnect with backoff; a lost connection fails each command as sent (outcome
// unknown) or unsent (safe to retry).
import net from 'node:net'
import tls from 'node:tls'
import { RespErrorReply, RespReplyParseError, RespReplyParser, type RespReply } from '../common/resp-reply-parser.ts'
import { RespWriter } from '../common/resp-writer.ts'
import { INTERNAL_USER } from '../common/secrets.ts'
import type { ClientTls } from '../common/tls-files.ts'
import type { Endpoint } from './config.ts'
import { ShardConnectionError, ShardErrorReply, ShardReplyLostError, ShardTimeoutError } from './errors.ts'

export type CommandArg = string | Buffer

export interface ShardConnectionOptions {
  name: string
  endpoint: Endpoint
  timeoutMs: number
  connectTimeoutMs: number
  /** Connect over TLS, verifying the shard's certificate; null: plain TCP. */
  tls: ClientTls | null
  /** The internal password, sent as AUTH shardline <password> before any command; null: no AUTH. */
  password: (() => string) | null
  /** Told of every connect failure or lost connection (hard failures for health tracking). */
  onFailure(error: Error): void
  /** Told of every reply it could not read; the connection is reset, which is not a hard failure. */
  onProtocolError(error: Error): void
}

interface Pending {
  resolve(reply: RespReply): void
  reject(error: Error): void
  deadline: number
  /** Timed out already: its reply, when it comes, is read and dropped. */
  abandoned: boolean
}

const RECONNECT_INITIAL_MS = 50
const RECONNECT_MAX_MS = 2000

export class ShardConnection {
  private readonly options: ShardConnectionOptions
  private socket: net.Socket | null = null
  private connected = false
  private closed = false
  private readonly writer = new RespWriter()
  /** Commands written to the writer but not yet to the socket. */
  private unsent: Pending[] = []
  /** Commands on the wire, in the order their replies will come. */
  // A taken slot is cleared at once: a settled command's closure holds its reply (a value of up
  // to maxValueBytes), and the queue is compacted only every 1,024 replies.
  private readonly inFlight: Array<Pending | undefined> = []
  private inFlightHead = 0
  private flushScheduled = false
  private reconnectDelay = RECONNECT_INITIAL_MS
  private reconnectTimer: NodeJS.Timeout | null = null
  private timeoutTimer: NodeJS.Timeout | null = null
  /** Why the router is replacing the socket itself (a timeout, an unreadable reply): not a peer failure. */
  private resetReason: string | null = null
  /** Connected, AUTH written, its reply not read yet: commands wait for it. */
  private authenticating = false
  /** Why the shard or the handshake refused this socket, said when it closes. */
  private refusal: string | null = null
  /** Why the last socket closed, said to the commands refused until the next one connects. */
  private lastFailure = 'connect failed'

  constructor(options: ShardConnectionOptions) {
    this.options = options
    this.connect()
  }

  get isConnected(): boolean {
    return this.connected
  }

  /** Commands sent or waiting to be sent that have no reply yet. */
  get outstanding(): number {
    return this.unsent.length + this.inFlight.length - this.inFlightHead
  }

  get waiting(): number {
    return this.unsent.length
  }

  send(args: readonly CommandArg[]): Promise<RespReply> {
    if (this.closed) return Promise.reject(new ShardConnectionError(`${this.options.name}: connection closed`))
    if (!this.connected && this.reconnectTimer !== null) {
      return Promise.reject(new ShardConnectionError(`${this.options.name}: not connected (${this.lastFailure})`))
    }
    return new Promise<RespReply>((resolve, reject) => {
      this.writer.arrayHeader(args.length)
      for (const arg of args) {
        if (typeof arg === 'string') this.writer.bulkLatin1(arg)
        else this.writer.bulk(arg)
      }
      this.unsent.push({ resolve, reject, deadline: Date.now() + this.options.timeoutMs, abandoned: false })
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => this.flush())
      }
      this.armTimeouts()
    })
  }

  close(): void {
    this.closed = true
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    this.socket?.destroy()
    this.failAll('connection closed')
  }

  private connect(): void {
    this.reconnectTimer = null
    const { host, port } = this.options.endpoint
    const clientTls = this.options.tls
    const socket = clientTls ? tls.connect({ host, port, ...clientTls.connectOptions(host) }) : net.connect({ host, port })
    socket.setNoDelay(true)
    this.socket = socket
    const parser = new RespReplyParser()
    // It covers the TLS handshake and the AUTH reply too: a shard that takes longer is not ready.
    socket.setTimeout(this.options.connectTimeoutMs, () => socket.destroy(new Error(`connect timeout after ${this.options.connectTimeoutMs} ms`)))
    let handshaken = false
    socket.on(clientTls ? 'secureConnect' : 'connect', () => {
      handshaken = true
      const password = this.options.password
      if (password === null) return this.ready(socket)
      this.authenticating = true
      const auth = new RespWriter()
      auth.arrayHeader(3)
      for (const arg of ['AUTH', INTERNAL_USER, password()]) auth.bulkText(arg)
      auth.writeTo(socket)
    })
    socket.on('data', (chunk: Buffer) => {
      try {
        parser.push(chunk, (reply) => (this.authenticating ? this.authenticated(socket, reply) : this.settle(reply)))
      } catch (error) {
        if (!(error instanceof RespReplyParseError)) throw error
        if (this.resetReason !== null) return
        // Replies before it were settled, so the unreadable one answers the oldest command on the
        // wire: that op fails, and the replies after it cannot be paired with theirs any more.
        const pending = this.takeInFlight()
        if (pending !== undefined && !pending.abandoned) pending.reject(new ShardErrorReply(this.options.name, `unreadable reply (${error.message})`))
        this.resetAfterProtocolError(error.message)
      }
    })
    socket.on('error', (error: Error) => {
      // A certificate the router cannot verify is a configuration problem worth naming.
      if (clientTls && !handshaken) this.refusal = `TLS handshake failed (${error.message})`
    })
    socket.on('close', (hadError) => {
      const wasConnected = this.connected
      this.connected = false
      this.authenticating = false
      this.socket = null
      const refusal = this.refusal
      this.refusal = null
      const reason = this.resetReason ?? refusal ?? (wasConnected ? 'connection lost' : 'connect failed')
      this.lastFailure = reason
      this.failAll(reason)
      if (this.closed) return
      // A reset is ours, not the peer's: heartbeats judge a slow or hung shard.
      if (this.resetReason === null) this.options.onFailure(new ShardConnectionError(`${this.options.name}: ${reason}${hadError || refusal !== null ? '' : ' (closed by peer)'}`))
      this.resetReason = null
      const delay = this.reconnectDelay * (0.5 + Math.random())
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS)
      this.reconnectTimer = setTimeout(() => this.connect(), delay)
    })
  }

  private ready(socket: net.Socket): void {
    socket.setTimeout(0)
    this.connected = true
    this.reconnectDelay = RECONNECT_INITIAL_MS
    this.flush()
  }

  // The password is never part of what is said: the shard's reply names the problem.
  private authenticated(socket: net.Socket, reply: RespReply): void {
    this.authenticating = false
    if (!(reply instanceof RespErrorReply)) return this.ready(socket)
    this.refusal = `the shard refused the credential of user ${INTERNAL_USER} (shardAccess.password): ${reply.message}`
    socket.destroy()
  }

  private flush(): void {
    this.flushScheduled = false
    if (!this.connected || this.socket === null || this.unsent.length === 0) return
    for (const pending of this.unsent) this.inFlight.push(pending)
    this.unsent = []
    this.writer.writeTo(this.socket)
  }

  private settle(reply: RespReply): void {
    // The rest of a read that came after an unpaired reply: nothing in it answers anything.
    if (this.resetReason !== null) return
    const pending = this.takeInFlight()
    if (pending === undefined) {
      this.resetAfterProtocolError('a reply without a request')
      return
    }
    if (!pending.abandoned) pending.resolve(reply)
  }

  /** The oldest command on the wire, taken off the queue: the one the next reply answers. */
  private takeInFlight(): Pending | undefined {
    if (this.inFlightHead === this.inFlight.length) return undefined
    const pending = this.inFlight[this.inFlightHead]
    this.inFlight[this.inFlightHead++] = undefined
    if (this.inFlightHead > 1024 && this.inFlightHead * 2 > this.inFlight.length) {
      this.inFlight.splice(0, this.inFlightHead)
      this.inFlightHead = 0
    }
    return pending
  }

  private resetAfterProtocolError(problem: string): void {
    if (this.resetReason !== null) return
    this.options.onProtocolError(new ShardErrorReply(this.options.name, problem))
    this.reset('reset after an unreadable reply')
  }

  // New commands wait for the next socket instead of following lost ones onto this one, so that
  // they fail as unsent (safe to retry) should the reconnect fail.
  private reset(reason: string): void {
    this.resetReason = reason
    this.connected = false
    this.socket?.destroy()
  }

  /** The commands on the wire, oldest first (every slot from the head on is filled). */
  private awaitingReplies(): Pending[] {
    return this.inFlight.slice(this.inFlightHead) as Pending[]
  }

  // Commands on the wire may have been applied; unsent ones were not, and may go elsewhere.
  private failAll(reason: string): void {
    const sent = this.awaitingReplies()
    const unsent = this.unsent
    this.inFlight.length = 0
    this.inFlightHead = 0
    this.unsent = []
    // Unsent commands were already encoded into the writer: start it over.
    this.writer.discard()
    const lost = new ShardReplyLostError(`${this.options.name}: ${reason} after the command was sent`)
    const notSent = new ShardConnectionError(`${this.options.name}: ${reason} before the command was sent`)
    for (const pending of sent) if (!pending.abandoned) pending.reject(lost)
    for (const pending of unsent) if (!pending.abandoned) pending.reject(notSent)
  }

  // One timer per connection, not per command: it fires for the oldest deadline and walks on.
  private armTimeouts(): void {
    if (this.timeoutTimer !== null) return
    this.timeoutTimer = setTimeout(() => {
      this.timeoutTimer = null
      const now = Date.now()
      let timedOut = false
      for (const queue of [this.awaitingReplies(), this.unsent]) {
        for (const pending of queue) {
          if (pending.abandoned || pending.deadline > now) continue
          pending.abandoned = true
          timedOut = true
          pending.reject(new ShardTimeoutError(this.options.name, this.options.timeoutMs))
        }
      }
      // Replies still owed on this socket may never come; a fresh connection keeps replies and
      // requests paired (the other commands on it fail as on any lost connection).
      if (timedOut && this.socket !== null && this.resetReason === null) this.reset('reset after a timeout')
      if (this.outstanding > 0) this.armTimeouts()
    }, Math.max(5, Math.min(this.options.timeoutMs, 50)))
    this.timeoutTimer.unref()
  }
}
