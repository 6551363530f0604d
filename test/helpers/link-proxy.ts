// One network link as a test controls it: an in-process TCP proxy in front of a target address that
// can cut the link, black-hole it (a silent partition), add one-way delay, and counts the bytes it carried.
import { once } from 'node:events'
import net from 'node:net'

/** Past this many bytes queued in one direction (a long delay or a black hole), the sender is paused: TCP's window, roughly. */
const QUEUE_HIGH_WATER_BYTES = 8 * 1024 * 1024

type LinkState = 'open' | 'cut' | 'blackhole'

/**
 * One direction of one connection: chunks leave `delayMs` after they arrived, in order; while the link
 * is black-holed nothing leaves (TCP would retransmit once the partition heals, so nothing is dropped),
 * and the end of the stream waits its turn behind the data like a FIN would.
 */
class Direction {
  private readonly queue: { at: number; chunk: Buffer | null }[] = []
  private queuedBytes = 0
  private timer: NodeJS.Timeout | null = null
  private waitingForDrain = false
  private readonly from: net.Socket
  private readonly to: net.Socket
  private readonly link: LinkProxy
  private readonly count: (bytes: number) => void

  constructor(from: net.Socket, to: net.Socket, link: LinkProxy, count: (bytes: number) => void) {
    this.from = from
    this.to = to
    this.link = link
    this.count = count
    from.on('data', (chunk: Buffer) => this.push(chunk))
    from.on('end', () => this.push(null))
    to.on('drain', () => {
      this.waitingForDrain = false
      this.pump()
    })
  }

  private push(chunk: Buffer | null): void {
    this.queue.push({ at: performance.now() + this.link.delayMs, chunk })
    if (chunk) this.queuedBytes += chunk.length
    if (this.queuedBytes > QUEUE_HIGH_WATER_BYTES) this.from.pause()
    this.pump()
  }

  /** Sends what is due, in order; called on arrival, on a timer, on drain and when the link heals. */
  pump(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    while (this.queue.length > 0 && this.link.state === 'open' && !this.waitingForDrain && !this.to.destroyed) {
      const waitMs = this.queue[0].at - performance.now()
      if (waitMs > 0) {
        this.timer = setTimeout(() => this.pump(), waitMs)
        return
      }
      const { chunk } = this.queue.shift()!
      if (chunk === null) {
        this.to.end()
        continue
      }
      this.queuedBytes -= chunk.length
      this.count(chunk.length)
      if (!this.to.write(chunk)) this.waitingForDrain = true
      if (this.queuedBytes <= QUEUE_HIGH_WATER_BYTES / 2 && this.from.isPaused()) this.from.resume()
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }
}

interface Connection {
  client: net.Socket
  upstream: net.Socket
  directions: Direction[]
}

export interface LinkBytes {
  /** Client → target. */
  forward: number
  /** Target → client. */
  backward: number
}

/** A proxy for one link: listen on 127.0.0.1:0 (see `address`), forward each connection to target. */
export class LinkProxy {
  readonly name: string
  /** Added delay, in ms, each way (a chunk sent now arrives this much later); changes apply to chunks arriving from then on. */
  delayMs = 0
  readonly bytes: LinkBytes = { forward: 0, backward: 0 }
  /** Connections accepted, over the proxy's life (cut ones included). */
  accepted = 0
  state: LinkState = 'open'
  private readonly target: { host: string; port: number }
  private readonly server: net.Server
  private readonly connections = new Set<Connection>()
  /** Connections one end of which closed inside a black hole: the other end learns it when the link heals. */
  private readonly closedInBlackhole = new Set<Connection>()

  private constructor(name: string, target: { host: string; port: number }) {
    this.name = name
    this.target = target
    this.server = net.createServer((client) => this.accept(client))
  }

  static async start(name: string, target: { host: string; port: number }): Promise<LinkProxy> {
    const proxy = new LinkProxy(name, target)
    proxy.server.listen(0, '127.0.0.1')
    await once(proxy.server, 'listening')
    return proxy
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port
  }

  /** host:port, as a shard's region.peers[].router names it. */
  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  /** Connections open right now. */
  get open(): number {
    return this.connections.size
  }

  /** Destroys every connection (both ends see a reset) and refuses new ones until heal(). */
  cut(): void {
    this.state = 'cut'
    for (const connection of this.connections) this.drop(connection)
  }

  /** Keeps every connection and accepts new ones, but carries nothing either way until heal(): a silent partition. */
  blackhole(): void {
    this.state = 'blackhole'
  }

  /** Undoes cut() or blackhole(): what a black hole held flows on, in order. */
  heal(): void {
    this.state = 'open'
    for (const connection of this.connections) for (const direction of connection.directions) direction.pump()
    for (const connection of this.closedInBlackhole) this.drop(connection)
    this.closedInBlackhole.clear()
  }

  async close(): Promise<void> {
    this.cut()
    await new Promise((resolve) => this.server.close(resolve))
  }

  private accept(client: net.Socket): void {
    this.accepted++
    if (this.state === 'cut') {
      client.resetAndDestroy()
      return
    }
    client.setNoDelay(true)
    const upstream = net.connect({ ...this.target, noDelay: true })
    const connection: Connection = {
      client,
      upstream,
      directions: [
        new Direction(client, upstream, this, (n) => (this.bytes.forward += n)),
        new Direction(upstream, client, this, (n) => (this.bytes.backward += n)),
      ],
    }
    this.connections.add(connection)
    // Either end failing takes the other down, as a broken path would (once it carries packets again);
    // errors are expected here (cuts, restarts).
    const close = () => (this.state === 'blackhole' ? this.closedInBlackhole.add(connection) : this.drop(connection))
    for (const socket of [client, upstream]) {
      socket.on('error', close)
      socket.on('close', close)
    }
  }

  private drop(connection: Connection): void {
    if (!this.connections.delete(connection)) return
    for (const direction of connection.directions) direction.stop()
    reset(connection.client)
    reset(connection.upstream)
  }
}

/**
 * Resets a socket (the peer sees ECONNRESET, as on a broken path), or only destroys it once its end
 * was sent: Node 24 can leave a socket reset during its pending shutdown referenced forever, and the
 * process then spins at exit (seen here; also https://github.com/libp2p/js-libp2p/pull/3597).
 */
function reset(socket: net.Socket): void {
  if (socket.writableEnded) socket.destroy()
  else socket.resetAndDestroy()
}
