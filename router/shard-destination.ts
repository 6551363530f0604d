// One shard process as the router sees it: a few pipelined connections used round-robin (over TLS
// and authenticated as the config's shard access says), a bounded queue, and the health state (up
// or knocked out) that the failover route consults.
import type { RespReply } from '../common/resp-reply-parser.ts'
import { formatEndpoint, type Endpoint, type RouterConfig } from './config.ts'
import { QueueFullError } from './errors.ts'
import type { ShardAccess } from './shard-access.ts'
import { ShardConnection, type CommandArg } from './shard-connection.ts'

export type DestinationRole = 'primary' | 'replica'

export interface DestinationIdentity {
  pool: string
  shard: string
  role: DestinationRole
  /** Position among the shard's destinations: 0 = primary, 1.. = replicas in config order. */
  index: number
  endpoint: Endpoint
  admin?: Endpoint
}

export interface HealthState {
  knockedOut: boolean
  consecutiveFailures: number
  knockedOutAt: number | null
  knockouts: number
  lastError: string | null
}

export class ShardDestination {
  readonly id: DestinationIdentity
  readonly name: string
  readonly address: string
  readonly health: HealthState = { knockedOut: false, consecutiveFailures: 0, knockedOutAt: null, knockouts: 0, lastError: null }
  /** Called on a hard failure (refused or lost connection) so the health monitor can act at once. */
  onHardFailure: (error: Error) => void = () => {}
  /** Called when a connection is reset over a reply the router cannot read: logged, not a knockout. */
  onProtocolError: (error: Error) => void = () => {}
  private readonly connections: ShardConnection[]
  private readonly maxQueue: number
  private next = 0
  /** The connection the last command went to. */
  private previous = 0

  /** access: owned by the caller (one for every destination of a route tree), which closes it. */
  constructor(id: DestinationIdentity, settings: RouterConfig['connections'], access: Pick<ShardAccess, 'tls' | 'password'>) {
    this.id = id
    this.address = formatEndpoint(id.endpoint)
    this.name = `${id.pool}/${id.shard}/${id.role === 'primary' ? 'primary' : `replica${id.index}`}`
    this.maxQueue = settings.maxQueue
    this.connections = Array.from({ length: settings.perDestination }, (_, i) => new ShardConnection({
      name: `${this.name} (${this.address}) #${i}`,
      endpoint: id.endpoint,
      timeoutMs: settings.timeoutMs,
      connectTimeoutMs: settings.connectTimeoutMs,
      tls: access.tls,
      password: access.password,
      onFailure: (error) => this.onHardFailure(error),
      onProtocolError: (error) => this.onProtocolError(error),
    }))
  }

  get connected(): number {
    return this.connections.filter((c) => c.isConnected).length
  }

  get inFlight(): number {
    return this.connections.reduce((sum, c) => sum + c.outstanding - c.waiting, 0)
  }

  get queued(): number {
    return this.connections.reduce((sum, c) => sum + c.waiting, 0)
  }

  send(args: readonly CommandArg[]): Promise<RespReply> {
    const outstanding = this.connections.reduce((sum, c) => sum + c.outstanding, 0)
    if (outstanding >= this.maxQueue) return Promise.reject(new QueueFullError(this.name, this.maxQueue))
    // The commands of one event-loop turn join the connection that already holds some of them
    // unsent, so they leave in one write: spread over the connections they would cost a write
    // here, and a read at the shard, per connection. Turns take the connections round robin.
    const joined = this.connections[this.previous]
    if (joined.waiting > 0 && joined.isConnected) return joined.send(args)
    // Prefer a connected connection, starting from the round-robin position.
    for (let i = 0; i < this.connections.length; i++) {
      const connection = this.connections[(this.next + i) % this.connections.length]
      if (connection.isConnected) {
        this.previous = (this.next + i) % this.connections.length
        this.next = (this.previous + 1) % this.connections.length
        return connection.send(args)
      }
    }
    this.previous = this.next
    this.next = (this.next + 1) % this.connections.length
    return this.connections[this.previous].send(args)
  }

  close(): void {
    for (const connection of this.connections) connection.close()
  }
}
