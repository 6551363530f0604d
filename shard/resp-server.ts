// The shard's RESP listener: per-connection parsing, command dispatch, one write per socket
// read, output-buffer limits, and a graceful close that answers what is already in flight.
import net from 'node:net'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { Logger } from '../common/logger.ts'
import { RespProtocolError, RespRequestParser, type RespLimits } from '../common/resp-request-parser.ts'
import { RespWriter } from '../common/resp-writer.ts'
import { COMMANDS, CommandError, type CommandContext, type CommandLimits } from './commands.ts'
import type { ConnectionStats, ShardMetrics } from './metrics.ts'
import type { Replication } from './replication.ts'
import type { Store } from './store.ts'

export interface RespServerLimits extends CommandLimits {
  maxArrayLength: number
  /** A client whose unread replies exceed this many bytes is disconnected. */
  maxOutputBufferBytes: number
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
  replication: Pick<Replication, 'attach' | 'warmingUp'>
}

/** One command in this many is timed for the latency histogram (a power of two). */
const LATENCY_SAMPLE = 8

export class RespServer {
  readonly connections: ConnectionStats
  totalCommands = 0
  private sampled = 0
  private readonly options: RespServerOptions
  private readonly parserLimits: RespLimits
  private readonly server: net.Server
  private readonly sockets = new Set<net.Socket>()

  constructor(options: RespServerOptions) {
    this.options = options
    this.connections = options.connections
    this.parserLimits = {
      // The bulk limit leaves room past the value limit so an oversize value gets a clear
      // "value too large" reply instead of a protocol error that closes the connection.
      maxBulkBytes: options.limits.maxValueBytes + 64 * 1024,
      maxArrayLength: options.limits.maxArrayLength,
      maxInlineBytes: 64 * 1024,
    }
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket))
  }

  async listen(port: number, host: string): Promise<net.AddressInfo> {
    this.server.listen(port, host)
    await once(this.server, 'listening')
    return this.server.address() as net.AddressInfo
  }

  /** Stops accepting, lets clients finish within graceMs, then drops the rest. */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const socket of this.sockets) socket.end()
    const timer = setTimeout(() => {
      for (const socket of this.sockets) socket.destroy()
    }, graceMs)
    await closed
    clearTimeout(timer)
  }

  private accept(socket: net.Socket): void {
    const { store, limits, metrics, log } = this.options
    this.sockets.add(socket)
    this.connections.current++
    this.connections.total++
    const parser = new RespRequestParser(this.parserLimits)
    const writer = new RespWriter()
    let closing = false
    // Set once the peer sent SL.SYNC: from then on the socket carries replication, not commands.
    let replicationFeed: ((args: Buffer[]) => void) | null = null
    const context: CommandContext = {
      store,
      writer,
      limits,
      info: this.options.info,
      config: this.options.config,
      quit: () => {
        closing = true
      },
      replicate: (args) => {
        // Replies already produced for this read go first; the feed writes to the socket itself.
        writer.writeTo(socket)
        replicationFeed = this.options.replication.attach(socket, args)
      },
    }
    const execute = (args: Buffer[]): void => {
      if (closing) return
      if (replicationFeed) {
        replicationFeed(args)
        return
      }
      this.totalCommands++
      const raw = args[0].toString('latin1')
      const name = COMMANDS.has(raw) ? raw : raw.toLowerCase()
      const spec = COMMANDS.get(name)
      const instruments = metrics.command(spec ? spec.name : 'unknown')
      // Every command is counted; one in LATENCY_SAMPLE is timed for the histogram, as two clock
      // reads and an observation per command cost a pipelined GET several percent of its CPU.
      const timed = (++this.sampled & (LATENCY_SAMPLE - 1)) === 0
      const started = timed ? performance.now() : 0
      try {
        if (!spec) throw new CommandError(`ERR unknown command '${printable(args[0])}', with args beginning with: ${args.slice(1, 4).map((a) => `'${printable(a)}'`).join(' ')}`)
        if (spec.arity > 0 ? args.length !== spec.arity : args.length < -spec.arity) {
          throw new CommandError(`ERR wrong number of arguments for '${spec.name}' command`)
        }
        if (this.options.replication.warmingUp && !spec.whileLoading) throw new CommandError('LOADING shardline shard is warming up from its replicas')
        spec.run(context, args)
        instruments.ok++
      } catch (error) {
        if (!(error instanceof CommandError)) throw error
        writer.error(error.message)
        instruments.error++
      }
      if (timed) instruments.duration.observe((performance.now() - started) / 1000)
    }
    socket.on('data', (chunk: Buffer) => {
      try {
        parser.push(chunk, execute)
      } catch (error) {
        if (!(error instanceof RespProtocolError)) throw error
        writer.error(`ERR Protocol error: ${error.message}`)
        this.connections.dropped.protocol_error++
        log.warn({ remote: socket.remoteAddress, error: error.message }, 'closing RESP connection after a protocol error')
        closing = true
      }
      writer.writeTo(socket)
      if (closing) {
        socket.end()
        return
      }
      if (replicationFeed === null && socket.writableLength > limits.maxOutputBufferBytes) {
        this.connections.dropped.output_buffer++
        log.warn({ remote: socket.remoteAddress, bytes: socket.writableLength }, 'closing RESP connection: client is not reading its replies')
        socket.destroy()
      }
    })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => {
      this.sockets.delete(socket)
      this.connections.current--
    })
  }
}

// Command names in error replies are cut and stripped of control bytes, as Redis does.
function printable(raw: Buffer): string {
  return raw.subarray(0, 128).toString('latin1').replace(/[^\x20-\x7e]/g, '?')
}
