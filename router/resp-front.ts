// The router's RESP front (the Redis protocol, limits.listen.resp): connections, pipelined commands
// run concurrently through the route tree with replies written in order, and the bounds on clients.
// With tenants, a connection runs data commands once AUTH names its tenant, within its permissions and rate limit;
// a peer region's shard (AUTH region <password>) runs SL.REGION.* only; over TLS when the config has certificates (redis-cli --tls).
import { once } from 'node:events'
import net from 'node:net'
import tls, { type TLSSocket } from 'node:tls'
import { performance } from 'node:perf_hooks'
import type { HybridLogicalClock } from '../common/hlc.ts'
import type { Logger } from '../common/logger.ts'
import { RespProtocolError, RespQueryBufferError, RespRequestParser, type RespLimits } from '../common/resp-request-parser.ts'
import { RESP_REQUEST_OVERHEAD_BYTES } from '../common/limits.ts'
import { CommandError } from '../common/resp-arguments.ts'
import { RespWriter } from '../common/resp-writer.ts'
import { ThrottledWarnings } from '../common/throttled-warning.ts'
import type { ServerTls } from '../common/tls-files.ts'
import { VERSION } from '../common/version.ts'
import type { RouterConfig } from './config.ts'
import type { RouterMetrics } from './metrics.ts'
import type { ResponseBudget } from './response-budget.ts'
import { BEFORE_AUTH, NOAUTH, REDIS_VERSION, findCommand, unknownCommand, wrongArity, type CommandContext, type CommandSpec } from './resp-commands.ts'
import { ErrorReply, routeErrorReply, valueBytes, writeReply, type Reply } from './resp-reply.ts'
import { KeyOrder } from './resp-key-order.ts'
import { RegionReceiver } from './region-receiver.ts'
import type { RouteTree } from './route-tree.ts'
import type { Op } from './routes/route.ts'
import { admit, rateLimitedMessage } from './routes/tenant-route.ts'
import type { Tenant } from './tenants.ts'

/** The limits read when the front starts (a restart applies new ones); the rest follow each reload. */
export type RespListenLimits = Pick<RouterConfig['limits'], 'maxRespConnections' | 'maxRespQueryBufferBytes' | 'maxValueBytes' | 'idleTimeoutMs' | 'requestTimeoutMs'>

export interface RespFrontOptions {
  log: Logger
  clock: HybridLogicalClock
  metrics: RouterMetrics
  /** Values held by replies in progress, router-wide (shared with the HTTP front). */
  budget: ResponseBudget
  limits: RespListenLimits
  /** The tree to route through; read once per command. */
  tree(): RouteTree
  /** Serve RESP over TLS with these certificates (reloaded as their files change). */
  tls?: ServerTls
  onTlsFailure?(error: Error, remoteAddress: string | undefined): void
}

/** A closed connection's last reply (QUIT, a protocol error) gets this long to be taken. */
const CLOSE_GRACE_MS = 1000

type DropReason = 'protocol_error' | 'query_buffer' | 'max_clients' | 'idle' | 'slow_client'

const DROP_MESSAGES: Record<DropReason, string> = {
  protocol_error: 'closing RESP connection after a protocol error',
  query_buffer: 'closing RESP connection: its unfinished request passed limits.maxRespQueryBufferBytes',
  max_clients: 'refusing RESP connection: limits.maxRespConnections connections are open',
  idle: 'closing RESP connection: idle for limits.idleTimeoutMs',
  slow_client: 'closing RESP connection: its replies went unread, or its request stayed unfinished, for limits.requestTimeoutMs',
}

/** One command of a connection's pipeline, from parsed to written. */
interface Slot {
  command: string
  startedAt: number
  reply: Reply | undefined
  /** Value bytes charged to the front's response budget until the reply is handed to the kernel. */
  charged: number
}

export class RespFront {
  readonly server: net.Server
  readonly options: RespFrontOptions
  /** Answers peer regions' SL.REGION.* commands. */
  readonly regions: RegionReceiver
  private readonly parserLimits: RespLimits
  private readonly connections = new Set<Connection>()
  private readonly warnings: ThrottledWarnings
  private readonly startedAt = Date.now()
  private sweeper: NodeJS.Timeout | null = null
  private nextClientId = 1

  constructor(options: RespFrontOptions) {
    this.options = options
    this.warnings = new ThrottledWarnings(options.log)
    this.regions = new RegionReceiver(options.metrics.region, options.log)
    this.parserLimits = {
      // Room past the value limit, so an oversize value gets "value too large" and the connection stays.
      maxBulkBytes: options.limits.maxValueBytes + RESP_REQUEST_OVERHEAD_BYTES,
      maxArrayLength: 1024 * 1024,
      maxInlineBytes: 64 * 1024,
      maxQueryBufferBytes: options.limits.maxRespQueryBufferBytes,
    }
    const accept = (socket: net.Socket) => this.accept(socket)
    const serverTls = options.tls
    if (serverTls) {
      const server = tls.createServer({ ...serverTls.options(), noDelay: true }, accept)
      serverTls.attach(server)
      const onTlsFailure = options.onTlsFailure
      if (onTlsFailure) server.on('tlsClientError', (error: Error, socket: TLSSocket) => onTlsFailure(error, socket.remoteAddress))
      this.server = server
    } else {
      this.server = net.createServer({ noDelay: true }, accept)
    }
  }

  get clients(): number {
    return this.connections.size
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    this.server.listen({ host, port })
    await once(this.server, 'listening')
    const { idleTimeoutMs, requestTimeoutMs } = this.options.limits
    // Checked a few times per timeout, so a connection is closed within 1.25 timeouts.
    this.sweeper = setInterval(() => this.shedStalled(), Math.max(25, Math.min(1000, idleTimeoutMs / 4, requestTimeoutMs / 4)))
    this.sweeper.unref()
    return this.server.address() as net.AddressInfo
  }

  /** Stops accepting; connections finish the commands they have in flight (at most graceMs), then close. */
  async close(graceMs: number): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper)
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const connection of this.connections) connection.finish()
    const timer = setTimeout(() => {
      for (const connection of this.connections) connection.socket.destroy()
    }, graceMs)
    await closed
    clearTimeout(timer)
  }

  info(): string {
    const uptime = Math.floor((Date.now() - this.startedAt) / 1000)
    return ['# Server', `redis_version:${REDIS_VERSION}`, `shardline_version:${VERSION}`, 'redis_mode:standalone', `process_id:${process.pid}`,
      `uptime_in_seconds:${uptime}`, `uptime_in_days:${Math.floor(uptime / 86400)}`, `connected_clients:${this.connections.size}`, ''].join('\r\n')
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => socket.destroy())
    if (this.connections.size >= this.options.limits.maxRespConnections) {
      this.drop('max_clients', { remote: socket.remoteAddress, maxRespConnections: this.options.limits.maxRespConnections })
      socket.end('-ERR max number of clients reached\r\n')
      closeAfterGrace(socket)
      return
    }
    const connection = new Connection(this, socket, new RespRequestParser(this.parserLimits), this.nextClientId++)
    this.connections.add(connection)
    socket.on('close', () => {
      this.connections.delete(connection)
      connection.abandon()
    })
  }

  /** Runs one command; a promise for the replies that wait on the route tree. */
  run(connection: Connection, args: Buffer[], slot: Slot): Reply | Promise<Reply> {
    const spec = findCommand(args[0])
    slot.command = spec ? spec.name : 'unknown'
    if (!spec) return unknownCommand(args)
    const tree = this.options.tree()
    // Before the arity: Redis answers NOAUTH to any command, well-formed or not.
    if (spec.region === true || connection.peerOn(tree)) {
      const refusal = this.regions.refusal(tree, spec, args, { peer: connection.peerOn(tree), tenant: connection.tenantOn(tree) !== null, remoteAddress: connection.socket.remoteAddress })
      if (refusal !== null) return refusal
    } else if (!tree.access.open) {
      const refusal = this.refusal(connection, tree, spec, args)
      if (refusal !== null) return refusal
    }
    if (spec.arity > 0 ? args.length !== spec.arity : args.length < -spec.arity) return wrongArity(spec.name)
    try {
      return spec.run(connection.context(tree), args)
    } catch (error) {
      return this.failure(slot, error)
    }
  }

  /** Why a connection's command may not run (no tenant yet, a permission it lacks, its rate limit); null: it may. */
  private refusal(connection: Connection, tree: RouteTree, spec: CommandSpec, args: Buffer[]): ErrorReply | null {
    const tenant = connection.tenantOn(tree)
    if (tenant === null) {
      if (BEFORE_AUTH.has(spec.name)) return null
      tree.authFailures.record('missing_token', connection.socket.remoteAddress, 'resp')
      return new ErrorReply(NOAUTH, 'noauth')
    }
    if (spec.permission === undefined) return null
    const cost = spec.keyStep === undefined ? 1 : Math.max(1, Math.floor((args.length - 1) / spec.keyStep))
    const refused = admit(tenant, spec.permission, cost, this.options.metrics)
    if (refused === 0) return null
    if (typeof refused === 'number') return new ErrorReply(`ERR rate_limited: ${rateLimitedMessage(tenant, refused)}`, 'rate_limited')
    tree.authFailures.record('forbidden', connection.socket.remoteAddress, 'resp')
    return new ErrorReply(`NOPERM this tenant may not run the '${spec.name}' command (tenant ${tenant.name} has no ${refused} permission)`, 'noperm')
  }

  /** The reply to a command that failed: Redis's words, the route tree's code, or (a bug) logged and made safe. */
  failure(slot: Slot, error: unknown): ErrorReply {
    if (error instanceof CommandError) return new ErrorReply(error.message)
    try {
      return routeErrorReply(error)
    } catch {
      this.options.log.error({ command: slot.command, error: (error as Error).stack }, 'RESP command failed unexpectedly')
      return new ErrorReply('ERR internal error', 'internal')
    }
  }

  /**
   * A reply as it is ready: counted, and charged to the front's budget of values held (refused past
   * limits.maxInFlightResponseBytes, like an HTTP response).
   */
  settle(slot: Slot, ready: Reply): Reply {
    let reply = ready
    const bytes = valueBytes(reply)
    if (bytes > 0) {
      const max = this.options.tree().config.limits.maxInFlightResponseBytes
      if (this.options.budget.charge(bytes, max)) {
        slot.charged = bytes
      } else {
        reply = new ErrorReply(`TRYAGAIN overloaded: the router holds ${this.options.budget.held} bytes of replies in progress, the limit is ${max} (limits.maxInFlightResponseBytes)`, 'overloaded')
      }
    }
    this.options.metrics.observeResp(slot.command, reply instanceof ErrorReply ? reply.outcome : 'ok', slot.startedAt)
    return reply
  }

  drop(reason: DropReason, details: Record<string, unknown>): void {
    this.warnings.warn(DROP_MESSAGES[reason], details)
  }

  private shedStalled(): void {
    const now = Date.now()
    const { idleTimeoutMs, requestTimeoutMs } = this.options.limits
    for (const connection of this.connections) {
      const quietMs = now - connection.lastActivityAt
      if (connection.stalled() && quietMs > requestTimeoutMs) connection.shed('slow_client', { quietMs })
      else if (connection.idle() && quietMs > idleTimeoutMs) connection.shed('idle', { quietMs })
    }
  }
}

/** One client connection: its parser, the pipeline of commands in flight, and the replies to write. */
class Connection {
  readonly socket: net.Socket
  lastActivityAt = Date.now()
  private readonly front: RespFront
  private readonly parser: RespRequestParser
  private readonly writer = new RespWriter()
  private readonly id: number
  /** Commands parsed and not yet written, oldest first. */
  private slots: Slot[] = []
  /** Reading stopped: the pipeline is full, or the peer is not taking its replies. */
  private paused = false
  /** After QUIT, a protocol error or a close: nothing more is read; the connection ends once its replies are out. */
  private closing = false
  private flushScheduled = false
  private readonly order = new KeyOrder()
  private commandContext: CommandContext | null = null
  /** Who AUTH named, and on which tree: a reload finds the tenant again by name (gone: not authenticated). */
  private tenant: Tenant | null = null
  private tenantTree: RouteTree | null = null
  /** AUTH named the region: a peer region's shard (region-receiver.ts says what it may run). */
  private regionPeer = false
  private readonly onCommand = (args: Buffer[]) => this.command(args)
  private readonly flushNow = () => {
    this.flushScheduled = false
    this.flush()
  }

  constructor(front: RespFront, socket: net.Socket, parser: RespRequestParser, id: number) {
    this.front = front
    this.socket = socket
    this.parser = parser
    this.id = id
    socket.on('data', (chunk: Buffer) => {
      if (this.closing) return
      this.lastActivityAt = Date.now()
      this.parse(() => this.parser.push(chunk, this.onCommand))
    })
    socket.on('drain', () => {
      this.lastActivityAt = Date.now()
      this.unpause()
    })
  }

  /** The connection's tenant on tree; null before AUTH (or when a reload removed it). */
  tenantOn(tree: RouteTree): Tenant | null {
    if (this.tenant !== null && this.tenantTree !== tree) {
      this.tenant = tree.access.byName(this.tenant.name) ?? null
      this.tenantTree = tree
    }
    return this.tenant
  }

  /** A peer region's connection, while the tree still takes region passwords. */
  peerOn(tree: RouteTree): boolean {
    return this.regionPeer && tree.regionAccess.takesPasswords
  }

  /** The context commands run in, made again only when a reload or AUTH brings another tree or tenant. */
  context(tree: RouteTree): CommandContext {
    const tenant = this.tenantOn(tree) ?? undefined
    if (this.commandContext?.tree !== tree || this.commandContext.tenant !== tenant) {
      const send = (op: Op) => tree.route(op)
      // Ops are made afresh for each command, so stamping them costs no copy.
      const route = tenant === undefined ? (op: Op) => this.order.route(op, send) : (op: Op) => {
        op.tenant = tenant
        return this.order.route(op, send)
      }
      this.commandContext = {
        tree,
        tenant,
        route,
        regions: this.front.regions,
        clock: this.front.options.clock,
        clientId: this.id,
        info: () => this.front.info(),
        quit: () => this.finish(),
        authenticate: (user, token) => this.authenticate(tree, user, token),
        authenticated: () => tree.access.open || this.tenantOn(tree) !== null || this.peerOn(tree),
      }
    }
    return this.commandContext
  }

  // A failed AUTH leaves the connection as it was (Redis keeps the user it had).
  private authenticate(tree: RouteTree, user: string | null, token: string): boolean {
    if (tree.regionAccess.takesAuth(user)) {
      if (!tree.regionAccess.authenticate(token)) {
        tree.authFailures.record('bad_token', this.socket.remoteAddress, 'resp')
        this.front.regions.refusedPassword()
        return false
      }
      this.regionPeer = true
      this.tenant = null
      return true
    }
    const found = tree.access.authenticate(token)
    // "default" is what clients send when given a password only.
    const named = typeof found !== 'string' && (user === null || user === found.name || (user === 'default' && tree.access.byName('default') === undefined))
    if (!named) {
      tree.authFailures.record(typeof found === 'string' ? found : 'bad_token', this.socket.remoteAddress, 'resp')
      return false
    }
    this.tenant = found
    this.tenantTree = tree
    this.regionPeer = false
    return true
  }

  /** Nothing in flight, nothing unread, no request half-arrived. */
  idle(): boolean {
    return this.inFlight === 0 && this.socket.writableLength === 0 && !this.parser.midRequest
  }

  /** Replies the peer does not take, or a request that does not finish arriving. */
  stalled(): boolean {
    return this.socket.writableLength > 0 || (this.inFlight === 0 && this.parser.midRequest)
  }

  shed(reason: DropReason, details: Record<string, unknown>): void {
    this.front.drop(reason, { remote: this.socket.remoteAddress, ...details })
    this.closing = true
    this.socket.destroy()
  }

  /** Reads no more; ends once the replies to what was read are written. */
  finish(): void {
    this.closing = true
    if (this.inFlight === 0) endGracefully(this.socket)
  }

  /** The socket closed: replies still to come are dropped and their charges released. */
  abandon(): void {
    this.closing = true
    for (const slot of this.slots) this.release(slot.charged)
    this.slots = []
  }

  private get inFlight(): number {
    return this.slots.length
  }

  private parse(step: () => boolean): void {
    try {
      step()
    } catch (error) {
      if (!(error instanceof RespProtocolError)) throw error
      // Answered after the replies to the commands before it, then the connection closes.
      this.enqueue('protocol', new ErrorReply(`ERR Protocol error: ${error.message}`, 'protocol_error'))
      this.front.drop(error instanceof RespQueryBufferError ? 'query_buffer' : 'protocol_error', { remote: this.socket.remoteAddress, error: error.message })
      this.finish()
    }
    this.flush()
  }

  // Runs a command at once; its reply takes its place in the pipeline. False stops the parser
  // (reading resumes once the pipeline has room and the peer has taken its replies).
  private command(args: Buffer[]): boolean {
    if (this.closing) return false
    const slot: Slot = { command: '', startedAt: performance.now(), reply: undefined, charged: 0 }
    this.slots.push(slot)
    const outcome = this.front.run(this, args, slot)
    if (outcome instanceof Promise) {
      outcome.then((reply) => this.arrive(slot, reply), (error: unknown) => this.arrive(slot, this.front.failure(slot, error)))
    } else {
      slot.reply = this.front.settle(slot, outcome)
    }
    if (this.mustWait()) {
      this.pause()
      return false
    }
    return true
  }

  private enqueue(command: string, reply: ErrorReply): void {
    const slot: Slot = { command, startedAt: performance.now(), reply: undefined, charged: 0 }
    this.slots.push(slot)
    slot.reply = this.front.settle(slot, reply)
  }

  private arrive(slot: Slot, reply: Reply): void {
    if (this.socket.destroyed) return
    slot.reply = this.front.settle(slot, reply)
    // Replies ready in the same event-loop turn go out in one write.
    if (!this.flushScheduled && this.slots[0] === slot) {
      this.flushScheduled = true
      setImmediate(this.flushNow)
    }
  }

  // Writes the replies ready at the head of the pipeline, in order, as one socket write.
  private flush(): void {
    if (this.socket.destroyed) return
    let charged = 0
    let ready = 0
    for (; ready < this.slots.length && this.slots[ready].reply !== undefined; ready++) {
      writeReply(this.writer, this.slots[ready].reply!)
      charged += this.slots[ready].charged
    }
    if (ready > 0) this.slots.splice(0, ready)
    if (this.writer.pending > 0) {
      this.writer.writeTo(this.socket, charged > 0 ? () => this.release(charged) : undefined)
    }
    if (this.closing) {
      if (this.inFlight === 0) endGracefully(this.socket)
      return
    }
    this.unpause()
  }

  private release(bytes: number): void {
    this.front.options.budget.release(bytes)
  }

  private mustWait(): boolean {
    const { maxRespPipeline, maxRespOutputBytes } = this.front.options.tree().config.limits
    return this.inFlight >= maxRespPipeline || this.socket.writableLength >= maxRespOutputBytes
  }

  private pause(): void {
    if (this.paused) return
    this.paused = true
    this.socket.pause()
  }

  // Goes on reading (first what the parser holds) once the pipeline has room and the replies were taken.
  private unpause(): void {
    if (!this.paused || this.closing || this.mustWait()) return
    this.paused = false
    this.socket.resume()
    this.parse(() => this.parser.resume(this.onCommand))
  }
}

// Ends a connection after its last replies; a peer that does not take them in time is cut off.
function endGracefully(socket: net.Socket): void {
  if (socket.writableEnded) return
  socket.end()
  closeAfterGrace(socket)
}

function closeAfterGrace(socket: net.Socket): void {
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
}
