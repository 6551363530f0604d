// The shard's RESP listener (plain TCP, or TLS): per-connection parsing, AUTH and command dispatch,
// one write per socket read, the bounds on clients (count, query and output buffers per client and in
// total, slow and idle clients), and a graceful close that answers what is already in flight.
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { RESP_REQUEST_OVERHEAD_BYTES } from '../common/limits.ts'
import { unknownCommandMessage } from '../common/resp-arguments.ts'
import type { Logger } from '../common/logger.ts'
import { RespProtocolError, RespQueryBufferError, RespRequestParser, type ArgsHandler, type RespArgs, type RespLimits } from '../common/resp-request-parser.ts'
import { RespWriter } from '../common/resp-writer.ts'
import { COMMAND_SPECS, CommandError, findCommand, type CommandContext, type CommandLimits, type CommandSpec } from './commands.ts'
import { KeyScans } from './key-scan.ts'
import type { CommandInstruments, ConnectionStats, DropReason, ShardMetrics } from './metrics.ts'
import { LOADING_ACTIVITY, type Replication } from './replication.ts'
import { StoreError, type Store } from './store.ts'
import { NOAUTH, WRONGPASS, noPermission, type Access, type ShardAuth } from './shard-auth.ts'
import { ThrottledWarnings } from '../common/throttled-warning.ts'
import type { ServerTls } from '../common/tls-files.ts'

export interface RespServerLimits extends CommandLimits {
  maxArrayLength: number
  /** An unfinished request holding more than this many bytes is refused and its connection closed. */
  maxQueryBufferBytes: number
  /** All clients' query and output buffers together; past it, clients with unread replies wait. */
  maxClientsMemory: number
  /** Connections past this many get -ERR max number of clients reached. */
  maxClients: number
  /** A client whose replies go unread, or whose request stays unfinished, this long is closed. */
  slowClientTimeoutMs: number
  /** A client that sends and reads nothing this long is closed; 0 = never. */
  idleTimeoutMs: number
}

export interface RespServerOptions {
  store: Store
  limits: RespServerLimits
  metrics: ShardMetrics
  log: Logger
  /** Counts the server keeps up to date, owned by the caller so metrics and INFO can read them. */
  connections: ConnectionStats
  info(sections: string[]): string
  config(): Record<string, string>
  replication: Pick<Replication, 'attach' | 'loadingAt' | 'role' | 'fromRegion'>
  /** null: every connection may run every command, as before AUTH existed. */
  auth: ShardAuth | null
  /** Serve RESP over TLS with these certificates. */
  tls: ServerTls | null
  /** A client's TLS handshake failed. */
  onTlsFailure?(error: Error): void
}

/** One command in this many is timed for the latency histogram (a power of two). */
const LATENCY_SAMPLE = 8
/**
 * A client's commands run in turns that end once their replies reach this size (Redis likewise
 * bounds what it writes per client per event). Clients waiting for another turn get one each, one
 * per round of the event loop, so between two reads of the sockets the shard builds at most one
 * turn's replies: big replies to some clients never keep a small one to another waiting. Smaller
 * turns cost pipelines of mid-size values throughput (at 64 KiB, half of it for 200 KB GETs).
 * While all clients' buffers together are past maxClientsMemory, the next turn waits for the peer
 * to take the replies instead.
 */
const TURN_BYTES = 1024 * 1024
/** A connection closed with a last reply (QUIT, a protocol error) gets this long to take it. */
const CLOSE_GRACE_MS = 1000

const DROP_MESSAGES: Record<DropReason, string> = {
  protocol_error: 'closing RESP connection after a protocol error',
  query_buffer: 'closing RESP connection: its unfinished request passed limits.maxQueryBufferBytes',
  clients_memory: "closing RESP connection: all clients' buffers together passed limits.maxClientsMemory and it held more than a value's worth",
  slow_client: 'closing RESP connection: its replies went unread, or its request stayed unfinished, for limits.slowClientTimeoutMs',
  idle: 'closing RESP connection: idle for limits.idleTimeoutMs',
  max_clients: 'refusing RESP connection: limits.maxClients connections are open',
}

/** One client connection, and what its bounds are checked against. */
class Client {
  readonly socket: net.Socket
  readonly parser: RespRequestParser
  readonly writer = new RespWriter()
  context!: CommandContext
  onCommand!: ArgsHandler
  onWritten!: () => void
  /** Its bytes as counted in ConnectionStats.bufferedBytes. */
  charged = 0
  /** What reading and running its commands waits for: its replies to be taken, or its next turn. */
  waitingFor: 'drain' | 'turn' | null = null
  /** After QUIT, a protocol error or an internal error: nothing more is read or run. */
  closing = false
  /** Set once the peer sent SL.SYNC: from then on the socket carries replication, not commands. */
  feed: ((args: Buffer[]) => void) | null = null
  commandsRun = 0
  /** Without auth every connection starts as 'internal', so the check per command is one comparison. */
  access: Access
  lastActivityAt: number
  /** When the unfinished request now buffered began to arrive; 0 when there is none. */
  requestStartedAt = 0
  /** When its peer last took some of its replies, or they began to wait. */
  outputProgressAt: number

  constructor(socket: net.Socket, parser: RespRequestParser, now: number, access: Access) {
    this.socket = socket
    this.parser = parser
    this.access = access
    this.lastActivityAt = now
    this.outputProgressAt = now
  }

  get heldBytes(): number {
    return this.feed ? 0 : this.parser.heldBytes + this.writer.pending + this.socket.writableLength
  }
}

export class RespServer {
  readonly connections: ConnectionStats
  totalCommands = 0
  private sampled = 0
  private readonly options: RespServerOptions
  private readonly parserLimits: RespLimits
  private readonly server: net.Server | tls.Server
  private readonly clients = new Set<Client>()
  private readonly warnings: ThrottledWarnings
  private readonly scans: KeyScans
  private sweeper: NodeJS.Timeout | null = null
  /** Clients waiting for their next turn, in the order they will get it. */
  private readonly turns: Client[] = []
  /** Each command's metrics by its index in the command table, once it has run; the last slot is for unknown commands. */
  private readonly instruments: Array<CommandInstruments | undefined> = []

  constructor(options: RespServerOptions) {
    this.options = options
    this.connections = options.connections
    this.warnings = new ThrottledWarnings(options.log)
    this.scans = new KeyScans(options.store)
    this.parserLimits = {
      // The bulk limit leaves room past the value limit so an oversize value gets a clear
      // "value too large" reply instead of a protocol error that closes the connection.
      maxBulkBytes: options.limits.maxValueBytes + RESP_REQUEST_OVERHEAD_BYTES,
      maxArrayLength: options.limits.maxArrayLength,
      maxInlineBytes: 64 * 1024,
      maxQueryBufferBytes: options.limits.maxQueryBufferBytes,
    }
    const tlsFiles = options.tls
    if (tlsFiles) {
      const server = tls.createServer({ noDelay: true, ...tlsFiles.options() }, (socket) => this.accept(socket))
      tlsFiles.attach(server)
      const onTlsFailure = options.onTlsFailure
      if (onTlsFailure) server.on('tlsClientError', (error) => onTlsFailure(error))
      this.server = server
    } else {
      this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket))
    }
  }

  async listen(port: number, host: string): Promise<net.AddressInfo> {
    this.server.listen(port, host)
    await once(this.server, 'listening')
    const { slowClientTimeoutMs, idleTimeoutMs } = this.options.limits
    // Checked a few times per timeout, so a client is closed within 1.25 timeouts.
    const everyMs = Math.max(10, Math.min(1000, slowClientTimeoutMs / 4, idleTimeoutMs > 0 ? idleTimeoutMs / 4 : Infinity))
    this.sweeper = setInterval(() => this.shedStalled(), everyMs)
    this.sweeper.unref()
    return this.server.address() as net.AddressInfo
  }

  /** Stops accepting, lets clients finish within graceMs, then drops the rest. */
  async close(graceMs: number): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper)
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const client of this.clients) client.socket.end()
    const timer = setTimeout(() => {
      for (const client of this.clients) client.socket.destroy()
    }, graceMs)
    await closed
    clearTimeout(timer)
  }

  private accept(socket: net.Socket): void {
    const { store, limits } = this.options
    this.connections.total++
    socket.on('error', () => socket.destroy())
    if (this.clients.size >= limits.maxClients) {
      this.countDrop('max_clients', { remote: socket.remoteAddress, maxClients: limits.maxClients })
      socket.write('-ERR max number of clients reached\r\n')
      endGracefully(socket)
      return
    }
    const client = new Client(socket, new RespRequestParser(this.parserLimits), Date.now(), this.options.auth ? 'none' : 'internal')
    const id = this.connections.total
    client.onCommand = (args) => this.onCommand(client, args)
    client.onWritten = () => this.written(client)
    client.context = {
      store,
      scans: this.scans,
      writer: client.writer,
      limits,
      info: this.options.info,
      config: this.options.config,
      quit: () => {
        client.closing = true
      },
      replicate: (args) => {
        // Replies already produced for this read go first; the feed writes to the socket itself.
        client.writer.writeTo(socket)
        client.feed = this.options.replication.attach(socket, args)
      },
      authenticate: (user, password) => this.authenticate(client, user, password),
      authenticated: () => client.access !== 'none',
      greeting: () => [['id', id], ['mode', 'standalone'], ['role', this.options.replication.role === 'replica' ? 'replica' : 'master']],
      fromRegion: (apply) => this.options.replication.fromRegion(apply),
    }
    this.clients.add(client)
    this.connections.current++
    socket.on('data', (chunk: Buffer) => {
      // A closing client's further input is dropped unread.
      if (client.closing) return
      client.lastActivityAt = Date.now()
      this.process(client, () => client.parser.pushArgs(chunk, client.onCommand), true)
    })
    socket.on('close', () => {
      this.clients.delete(client)
      this.connections.current--
      this.connections.bufferedBytes -= client.charged
      client.charged = 0
    })
  }

  // Parses and runs what parse() reaches, writes the replies, then pauses the client (until its
  // replies are taken, or until its next turn), resumes it, or closes it, and settles its share
  // of the clients' memory.
  private process(client: Client, parse: () => boolean, afterRead = false): void {
    const { socket, writer, parser } = client
    const commandsBefore = client.commandsRun
    const wasWaiting = client.waitingFor !== null
    // Running now; a command that stops the parser says what it waits for.
    client.waitingFor = null
    let finished: boolean
    try {
      finished = parse()
    } catch (error) {
      if (!(error instanceof RespProtocolError)) throw error
      writer.error(`ERR Protocol error: ${error.message}`)
      client.closing = true
      this.countDrop(error instanceof RespQueryBufferError ? 'query_buffer' : 'protocol_error', { remote: socket.remoteAddress, error: error.message })
      finished = true
    }
    const hadUnread = socket.writableLength > 0
    writer.writeTo(socket, client.onWritten)
    if (client.closing) {
      endGracefully(socket)
      return
    }
    const now = Date.now()
    if (!hadUnread && socket.writableLength > 0) client.outputProgressAt = now
    // A big request arriving is read a turn at a time too, so that many uploads at once cannot
    // keep the shard reading them while a small request waits.
    if (finished && afterRead && parser.heldBytes >= TURN_BYTES) client.waitingFor = 'turn'
    if (client.waitingFor === null) {
      if (wasWaiting) socket.resume()
    } else {
      if (!wasWaiting) socket.pause()
      if (client.waitingFor === 'turn' && this.turns.push(client) === 1) setImmediate(() => this.nextTurn())
    }
    if (!finished || !parser.midRequest) client.requestStartedAt = 0
    else if (client.requestStartedAt === 0 || client.commandsRun > commandsBefore) client.requestStartedAt = now
    this.recharge(client)
    if (this.connections.bufferedBytes > this.options.limits.maxClientsMemory && client.charged > this.parserLimits.maxBulkBytes) {
      this.shed(client, 'clients_memory', { heldBytes: client.charged, allClientsBytes: this.connections.bufferedBytes })
    }
  }

  private onCommand(client: Client, args: RespArgs): boolean {
    if (client.closing) return false
    if (client.feed) {
      client.feed(args.toArray())
      return true
    }
    this.execute(client, args)
    client.commandsRun++
    if (client.closing || client.feed !== null) return !client.closing
    client.waitingFor = this.waitAfterCommand(client)
    return client.waitingFor === null
  }

  // Checked after every command, so a pipeline stops as its replies reach a limit, however many
  // commands one read carried.
  private waitAfterCommand(client: Client): Client['waitingFor'] {
    const { maxOutputBufferBytes, maxClientsMemory } = this.options.limits
    const unsent = client.writer.pending
    const unread = client.socket.writableLength
    if (unsent + unread >= maxOutputBufferBytes) return 'drain'
    if (unread === 0 && unsent < TURN_BYTES) return null
    // Past the total across clients, a client whose peer has replies to take waits for that.
    if (this.connections.bufferedBytes - client.charged + client.parser.heldBytes + unsent + unread > maxClientsMemory) return 'drain'
    return unsent >= TURN_BYTES ? 'turn' : null
  }

  private nextTurn(): void {
    const client = this.turns.shift()!
    if (this.turns.length > 0) setImmediate(() => this.nextTurn())
    if (client.closing || client.socket.destroyed || client.waitingFor !== 'turn') return
    this.process(client, () => client.parser.resumeArgs(client.onCommand))
  }

  // The peer took some replies: progress; a client waiting for all of them to be taken goes on.
  private written(client: Client): void {
    if (client.closing || client.feed || client.socket.destroyed) return
    const now = Date.now()
    client.outputProgressAt = now
    client.lastActivityAt = now
    if (client.waitingFor === 'drain' && client.socket.writableLength === 0) this.process(client, () => client.parser.resumeArgs(client.onCommand))
    else this.recharge(client)
  }

  private recharge(client: Client): void {
    const held = client.heldBytes
    this.connections.bufferedBytes += held - client.charged
    client.charged = held
  }

  private execute(client: Client, args: RespArgs): void {
    const { log } = this.options
    this.totalCommands++
    const spec = findCommand(args)
    const slot = spec ? spec.index : COMMAND_SPECS.length
    const instruments = (this.instruments[slot] ??= this.options.metrics.command(spec ? spec.name : 'unknown'))
    // Every command is counted; one in LATENCY_SAMPLE is timed for the histogram, as two clock
    // reads and an observation per command cost a pipelined GET several percent of its CPU.
    const timed = (++this.sampled & (LATENCY_SAMPLE - 1)) === 0
    const started = timed ? performance.now() : 0
    try {
      if (client.access !== 'internal') this.checkAccess(client, spec)
      if (!spec) throw new CommandError(unknownCommandMessage(args.toArray()))
      if (spec.arity > 0 ? args.count !== spec.arity : args.count < -spec.arity) {
        throw new CommandError(`ERR wrong number of arguments for '${spec.name}' command`)
      }
      if (!spec.whileLoading) {
        // The clock as last read for this client (its bytes arrived, or its replies were taken): none per command.
        const loading = this.options.replication.loadingAt(client.lastActivityAt)
        if (loading !== null) throw new CommandError(`LOADING shardline shard is ${LOADING_ACTIVITY[loading]}`)
      }
      spec.run(client.context, args)
      instruments.ok++
    } catch (error) {
      instruments.error++
      if (error instanceof CommandError) {
        client.writer.error(error.message)
      } else if (error instanceof StoreError) {
        client.writer.error(error.message)
        this.warnings.warn(`store refused a command: ${error.message}`, { remote: client.socket.remoteAddress, command: spec?.name })
      } else {
        // A bug, not the client's doing: its reply may be cut short, so its connection ends, not the process.
        client.writer.error('ERR internal error')
        client.closing = true
        log.error({ err: error, command: spec?.name, remote: client.socket.remoteAddress }, 'a command failed unexpectedly; closing its connection')
      }
    }
    if (timed) instruments.duration.observe((performance.now() - started) / 1000)
  }

  private checkAccess(client: Client, spec: CommandSpec | undefined): void {
    const refusal = this.options.auth?.refusal(client.access, spec)
    if (!refusal) return
    this.options.auth!.refused(refusal, { remote: client.socket.remoteAddress, command: spec?.name ?? 'unknown' })
    throw new CommandError(refusal === 'noauth' ? NOAUTH : noPermission(spec!.name))
  }

  // A refused AUTH leaves the connection with what it had, as Redis does.
  private authenticate(client: Client, user: string | null, password: string): void {
    const auth = this.options.auth
    if (!auth) throw new CommandError('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?')
    const access = auth.check(user, password)
    if (access === null) {
      auth.refused('wrongpass', { remote: client.socket.remoteAddress })
      throw new CommandError(WRONGPASS)
    }
    client.access = access
  }

  private shedStalled(): void {
    const now = Date.now()
    const { slowClientTimeoutMs, idleTimeoutMs } = this.options.limits
    for (const client of this.clients) {
      if (client.closing || client.feed) continue
      const unread = client.socket.writableLength
      if (unread > 0 && now - client.outputProgressAt > slowClientTimeoutMs) {
        this.shed(client, 'slow_client', { unreadBytes: unread, stalledMs: now - client.outputProgressAt })
      } else if (client.requestStartedAt > 0 && now - client.requestStartedAt > slowClientTimeoutMs) {
        this.shed(client, 'slow_client', { requestBytes: client.parser.heldBytes, stalledMs: now - client.requestStartedAt })
      } else if (idleTimeoutMs > 0 && unread === 0 && client.waitingFor === null && client.requestStartedAt === 0 && now - client.lastActivityAt > idleTimeoutMs) {
        this.shed(client, 'idle', { idleMs: now - client.lastActivityAt })
      }
    }
  }

  // Closes at once: the client is not reading (or is idle), so no last reply would reach it.
  private shed(client: Client, reason: DropReason, details: Record<string, unknown>): void {
    client.closing = true
    this.countDrop(reason, { remote: client.socket.remoteAddress, ...details })
    client.socket.destroy()
  }

  private countDrop(reason: DropReason, details: Record<string, unknown>): void {
    this.connections.dropped[reason]++
    this.warnings.warn(DROP_MESSAGES[reason], details)
  }
}

// Ends a connection after its last replies; a peer that does not take them in time is cut off.
function endGracefully(socket: net.Socket): void {
  socket.end()
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
}
