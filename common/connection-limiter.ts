// Caps an HTTP server's connections: at the cap the connection idle the longest (no request in
// progress) is closed to admit the new one; when every connection is busy the new one is refused.
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import { rawErrorResponse } from './http-errors.ts'
import type { Logger } from './logger.ts'
import { ThrottledWarning } from './throttled-warning.ts'

/** Why a connection was closed by the cap: to make room, or because none could be made. */
export type ShedReason = 'idle' | 'refused'

export interface ConnectionLimiterOptions {
  max: number
  log: Logger
  /** Names the server in log lines ("data port", "admin port"). */
  name: string
  onShed?(reason: ShedReason): void
}

const REFUSAL = rawErrorResponse(503, 'too_many_connections', 'the server holds as many connections as it allows, all of them busy')

export class ConnectionLimiter {
  /** Connections with no request in progress, the longest idle first (a Set keeps insertion order). */
  private readonly idle = new Set<Socket>()
  /** Connections with requests in progress, and how many (HTTP/1.1 may pipeline). */
  private readonly busy = new Map<Socket, number>()
  private readonly options: ConnectionLimiterOptions
  private readonly atCap: ThrottledWarning

  constructor(server: Server, options: ConnectionLimiterOptions) {
    this.options = options
    this.atCap = new ThrottledWarning(options.log, `${options.name} at its connection cap: closing idle connections, refusing new ones when none is idle`)
    server.on('connection', (socket: Socket) => this.admit(socket))
    server.on('request', (request: { socket: Socket }, response: { once(event: 'close', listener: () => void): void }) => {
      const socket = request.socket
      if (!this.idle.delete(socket) && !this.busy.has(socket)) return
      this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1)
      response.once('close', () => this.finished(socket))
    })
  }

  /** Connections this server holds (refused ones not counted). */
  get open(): number {
    return this.idle.size + this.busy.size
  }

  private admit(socket: Socket): void {
    if (this.open >= this.options.max) {
      const [longestIdle] = this.idle
      if (longestIdle === undefined) {
        this.shed('refused')
        // Stop reading first: nothing this connection sends may reach a route.
        socket.pause()
        socket.end(REFUSAL, () => socket.destroy())
        return
      }
      this.idle.delete(longestIdle)
      longestIdle.destroy()
      this.shed('idle')
    }
    this.idle.add(socket)
    socket.once('close', () => {
      this.idle.delete(socket)
      this.busy.delete(socket)
    })
  }

  private finished(socket: Socket): void {
    const inProgress = this.busy.get(socket)
    if (inProgress === undefined) return
    if (inProgress > 1) {
      this.busy.set(socket, inProgress - 1)
      return
    }
    this.busy.delete(socket)
    if (!socket.destroyed) this.idle.add(socket)
  }

  private shed(reason: ShedReason): void {
    this.options.onShed?.(reason)
    this.atCap.warn({ max: this.options.max, reason })
  }
}
