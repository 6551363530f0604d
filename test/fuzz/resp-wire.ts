// RESP on a raw socket for the fuzz properties: a strict reply reader (integers exact, as bigint; a
// malformed reply is a finding, never skipped) and a connection that sends any bytes at all.
import net from 'node:net'
import { once } from 'node:events'

export type Reply =
  | { kind: 'simple'; text: string }
  | { kind: 'error'; text: string }
  | { kind: 'integer'; value: bigint }
  | { kind: 'bulk'; value: Buffer | null }
  | { kind: 'array'; items: Reply[] | null }

export class MalformedReply extends Error {}

const CR = 13
const LF = 10

/** The reply starting at pos and where it ends; undefined while incomplete. Throws MalformedReply. */
export function readReply(data: Buffer, pos: number): { reply: Reply; end: number } | undefined {
  if (pos >= data.length) return undefined
  const lineEnd = data.indexOf('\r\n', pos, 'latin1')
  if (lineEnd < 0) return undefined
  const line = data.toString('latin1', pos + 1, lineEnd)
  if (/[\r\n]/.test(line)) throw new MalformedReply(`a bare CR or LF inside the line ${JSON.stringify(line)}`)
  const next = lineEnd + 2
  switch (data[pos]) {
    case 0x2b: // +
      return { reply: { kind: 'simple', text: line }, end: next }
    case 0x2d: // -
      return { reply: { kind: 'error', text: line }, end: next }
    case 0x3a: // :
      return { reply: { kind: 'integer', value: integerLine(line) }, end: next }
    case 0x24: { // $
      const length = integerLine(line)
      if (length === -1n) return { reply: { kind: 'bulk', value: null }, end: next }
      if (length < 0n) throw new MalformedReply(`bulk length ${length}`)
      const end = next + Number(length)
      if (end + 2 > data.length) return undefined
      if (data[end] !== CR || data[end + 1] !== LF) throw new MalformedReply(`a bulk of ${length} bytes not followed by CRLF`)
      return { reply: { kind: 'bulk', value: Buffer.from(data.subarray(next, end)) }, end: end + 2 }
    }
    case 0x2a: { // *
      const count = integerLine(line)
      if (count === -1n) return { reply: { kind: 'array', items: null }, end: next }
      if (count < 0n) throw new MalformedReply(`array length ${count}`)
      const items: Reply[] = []
      let at = next
      for (let i = 0n; i < count; i++) {
        const item = readReply(data, at)
        if (item === undefined) return undefined
        items.push(item.reply)
        at = item.end
      }
      return { reply: { kind: 'array', items }, end: at }
    }
    default:
      throw new MalformedReply(`reply type byte ${JSON.stringify(String.fromCharCode(data[pos]))} at offset ${pos}`)
  }
}

function integerLine(line: string): bigint {
  if (!/^-?\d+$/.test(line)) throw new MalformedReply(`${JSON.stringify(line)} is not an integer`)
  return BigInt(line)
}

/** Every reply in bytes a server sent before closing; a reply cut off at the end is malformed. */
export function readAllReplies(data: Buffer): Reply[] {
  const replies: Reply[] = []
  let pos = 0
  while (pos < data.length) {
    const read = readReply(data, pos)
    if (read === undefined) throw new MalformedReply(`the connection closed inside a reply: ${JSON.stringify(data.toString('latin1', pos, pos + 80))}`)
    replies.push(read.reply)
    pos = read.end
  }
  return replies
}

export function formatReply(reply: Reply): string {
  switch (reply.kind) {
    case 'simple':
      return `+${reply.text}`
    case 'error':
      return `-${reply.text}`
    case 'integer':
      return `:${reply.value}`
    case 'bulk':
      return reply.value === null ? '$-1 (nil)' : reply.value.length <= 60 ? `$${JSON.stringify(reply.value.toString('latin1'))}` : `$<${reply.value.length} bytes ${JSON.stringify(reply.value.toString('latin1', 0, 40))}…>`
    case 'array':
      return reply.items === null ? '*-1 (nil)' : `[${reply.items.map(formatReply).join(', ')}]`
  }
}

export function encodeCommand(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg, 'latin1') : arg
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** Longer than any reply takes on loopback: no answer by then is a finding. */
const REPLY_TIMEOUT_MS = 5000

/** One client connection on a raw socket: replies read strictly, in order. */
export class RespConnection {
  private readonly socket: net.Socket
  private pending: Buffer = Buffer.alloc(0)
  private readonly replies: Reply[] = []
  private failure: Error | null = null
  private wake: (() => void) | null = null

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
      try {
        let read = readReply(this.pending, 0)
        while (read !== undefined) {
          this.replies.push(read.reply)
          this.pending = this.pending.subarray(read.end)
          read = readReply(this.pending, 0)
        }
      } catch (error) {
        this.failure = error as Error
      }
      this.wake?.()
    })
    socket.on('error', (error) => {
      this.failure ??= error
      this.wake?.()
    })
    socket.on('close', () => {
      this.failure ??= new Error('the server closed the connection')
      this.wake?.()
    })
  }

  static async open(port: number): Promise<RespConnection> {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true })
    await once(socket, 'connect')
    return new RespConnection(socket)
  }

  /** Sends commands in one write (a pipeline) and returns their replies in order. */
  async pipeline(commands: readonly (readonly (string | Buffer)[])[]): Promise<Reply[]> {
    this.socket.write(Buffer.concat(commands.map(encodeCommand)))
    const replies: Reply[] = []
    for (let i = 0; i < commands.length; i++) replies.push(await this.nextReply())
    return replies
  }

  async command(args: readonly (string | Buffer)[]): Promise<Reply> {
    return (await this.pipeline([args]))[0]
  }

  close(): void {
    this.socket.destroy()
  }

  private async nextReply(): Promise<Reply> {
    const deadline = Date.now() + REPLY_TIMEOUT_MS
    while (this.replies.length === 0) {
      if (this.failure) throw this.failure
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new Error(`no reply within ${REPLY_TIMEOUT_MS} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.wake = null
    }
    return this.replies.shift()!
  }
}

/**
 * Sends bytes on a fresh connection, ends it, and returns everything the server wrote before it
 * closed its side; fails if the server has not closed within REPLY_TIMEOUT_MS.
 */
export async function sendAndHangUp(port: number, bytes: Buffer): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true })
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  // A reset after the server's own close is allowed: what matters is that it closed.
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  await once(socket, 'connect')
  socket.end(bytes)
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    socket.destroy()
  }, REPLY_TIMEOUT_MS)
  await closed
  clearTimeout(timer)
  if (timedOut) throw new Error(`the server kept the connection open ${REPLY_TIMEOUT_MS} ms after the client hung up`)
  return Buffer.concat(chunks)
}
