// A shard's connection to a peer region's routers: plain TCP or TLS, reconnected with a jittered
// backoff (100 ms doubling to 5 s), replies read in order with a cap on their size.
import { Backoff } from '../common/backoff.ts'
import net from 'node:net'
import tls from 'node:tls'
import { RespReplyParseError, RespReplyParser, type RespReply } from '../common/resp-reply-parser.ts'
import type { ClientTls } from '../common/tls-files.ts'
import { splitAddress } from './replication-link.ts'

export interface RegionLinkHandlers {
  /** The connection (and TLS handshake) is up: the handshake commands go now. */
  connected(): void
  reply(reply: RespReply): void
  /** The connection ended (why: the peer's doing, or cut()'s reason); a reconnect is scheduled. */
  disconnected(why: string): void
  /** The socket took what was buffered for it. */
  drained(): void
}

const RECONNECT_MIN_MS = 100
const RECONNECT_MAX_MS = 5000
/**
 * A router's replies are short (an integer, an error, HELLO's incarnation): a reply still unfinished
 * past this many bytes is no router's, and the link is cut rather than buffering it.
 */
export const MAX_REPLY_BYTES = 1024 * 1024

export class RegionLink {
  private readonly address: string
  private readonly clientTls: ClientTls | null
  private readonly connectTimeoutMs: number
  private readonly handlers: RegionLinkHandlers
  private socket: net.Socket | null = null
  private up = false
  private closed = false
  private readonly backoff = new Backoff(RECONNECT_MIN_MS, RECONNECT_MAX_MS)
  private reconnectTimer: NodeJS.Timeout | null = null

  constructor(address: string, clientTls: ClientTls | null, connectTimeoutMs: number, handlers: RegionLinkHandlers) {
    this.address = address
    this.clientTls = clientTls
    this.connectTimeoutMs = connectTimeoutMs
    this.handlers = handlers
  }

  start(): void {
    this.connect()
  }

  get isUp(): boolean {
    return this.up
  }

  /** Bytes written and not yet taken by the kernel. */
  get writableLength(): number {
    return this.socket?.writableLength ?? 0
  }

  /** Writes the pieces as one write (corked); false when the link is down (nothing is written). */
  write(pieces: Buffer[]): boolean {
    const socket = this.socket
    if (!this.up || socket === null || pieces.length === 0) return false
    socket.cork()
    for (const piece of pieces) socket.write(piece)
    socket.uncork()
    return true
  }

  /** The handshake passed: the next reconnect starts from the shortest backoff again. */
  healthy(): void {
    this.backoff.reset()
  }

  /** Ends the connection now; disconnected() is told why, and a reconnect follows. */
  cut(why: string): void {
    const socket = this.socket
    if (socket === null) return
    this.lost(socket, why)
    socket.destroy()
  }

  close(): void {
    this.closed = true
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    const socket = this.socket
    this.socket = null
    this.up = false
    socket?.destroy()
  }

  private connect(): void {
    const [host, port] = splitAddress(this.address)
    const clientTls = this.clientTls
    const socket = clientTls ? tls.connect({ host, port, ...clientTls.connectOptions(host) }) : net.connect({ host, port })
    socket.setNoDelay(true)
    this.socket = socket
    const parser = new RespReplyParser()
    // Bytes read since the last complete reply: what an unfinished reply may hold, at most.
    let unreplied = 0
    // A peer that never answers the connect (a blackholed route) is given up on like a refusal.
    socket.setTimeout(this.connectTimeoutMs, () => this.cut(`no connection within ${this.connectTimeoutMs} ms`))
    socket.on(clientTls ? 'secureConnect' : 'connect', () => {
      socket.setTimeout(0)
      this.up = true
      this.handlers.connected()
    })
    socket.on('data', (chunk: Buffer) => {
      unreplied += chunk.length
      try {
        parser.push(chunk, (reply) => {
          unreplied = 0
          if (this.socket === socket) this.handlers.reply(reply)
        })
      } catch (error) {
        // A bug in handling a reply ends this connection, not the shard.
        this.cut(error instanceof RespReplyParseError ? `it sent bytes that are not RESP (${error.message})` : `handling its reply failed: ${(error as Error).stack}`)
        return
      }
      if (unreplied > MAX_REPLY_BYTES) this.cut(`a reply passed ${MAX_REPLY_BYTES} bytes`)
    })
    socket.on('drain', () => {
      if (this.socket === socket) this.handlers.drained()
    })
    socket.on('error', (error) => this.lost(socket, error.message))
    socket.on('close', () => this.lost(socket, 'the peer closed the connection'))
  }

  private lost(socket: net.Socket, why: string): void {
    if (this.socket !== socket) return
    socket.destroy()
    this.socket = null
    this.up = false
    this.handlers.disconnected(why)
    if (this.closed) return
    const delay = this.backoff.next()
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null
      this.connect()
    }, delay)
  }
}
