// A fake peer region router for region-shipping tests: a small RESP server that records what a
// shipper sends, answers HELLO with an incarnation the test sets, and can stall, refuse or drop.
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { DEFAULT_RESP_LIMITS, RespRequestParser } from '../../common/resp-request-parser.ts'
import type { Teardown } from './processes.ts'

export interface FakePeer {
  port: number
  address: string
  name: string
  id: number
  incarnation: string
  /** Every command received, as latin1 strings, in arrival order (across connections). */
  commands: string[][]
  /** The SL.REGION.APPLY commands' arguments after the command name: [origin, pool, op, key, …]. */
  applied(): string[][]
  /**
   * The raw RESP reply to a command, or undefined for the default one (+OK to AUTH, the HELLO
   * array, :1 to anything else).
   */
  answer: (args: string[]) => string | undefined
  /** While true, replies are held (in order) until release(). */
  stalled: boolean
  release(): void
  /** While true, connections are accepted and closed at once. */
  refusing: boolean
  /** Closes every open connection. */
  dropAll(): void
  /** Connections accepted (refused ones included). */
  accepted: number
}

export interface FakePeerOptions {
  name?: string
  id?: number
  /** Serve over TLS with this certificate and key (PEM text). */
  tls?: { cert: string; key: string }
}

export async function startFakePeer(t: Teardown, options: FakePeerOptions = {}): Promise<FakePeer> {
  const { name = 'west', id = 2 } = options
  const sockets = new Set<net.Socket>()
  const held: Array<() => void> = []
  const peer: FakePeer = {
    port: 0,
    address: '',
    name,
    id,
    incarnation: 's0=first',
    commands: [],
    applied: () => peer.commands.filter((args) => args[0].toUpperCase() === 'SL.REGION.APPLY').map((args) => args.slice(1)),
    answer: () => undefined,
    stalled: false,
    release() {
      peer.stalled = false
      for (const send of held.splice(0)) send()
    },
    refusing: false,
    dropAll() {
      for (const socket of sockets) socket.destroy()
    },
    accepted: 0,
  }
  const defaultReply = (args: string[]) => {
    const command = args[0].toUpperCase()
    if (command === 'AUTH') return '+OK\r\n'
    if (command === 'SL.REGION.HELLO') return `*3\r\n$${peer.name.length}\r\n${peer.name}\r\n:${peer.id}\r\n$${peer.incarnation.length}\r\n${peer.incarnation}\r\n`
    return ':1\r\n'
  }
  const accept = (socket: net.Socket) => {
    peer.accepted++
    if (peer.refusing) {
      socket.destroy()
      return
    }
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    const parser = new RespRequestParser(DEFAULT_RESP_LIMITS)
    socket.on('data', (chunk: Buffer) => parser.push(chunk, (buffers) => {
      const args = buffers.map((arg) => arg.toString('latin1'))
      peer.commands.push(args)
      const reply = peer.answer(args) ?? defaultReply(args)
      const send = () => {
        if (!socket.destroyed) socket.write(reply, 'latin1')
      }
      if (peer.stalled || held.length > 0) held.push(send)
      else send()
    }))
  }
  const server = options.tls ? tls.createServer(options.tls, accept) : net.createServer(accept)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  peer.port = (server.address() as net.AddressInfo).port
  peer.address = `127.0.0.1:${peer.port}`
  t.teardown(() => {
    peer.dropAll()
    server.close()
  })
  return peer
}
