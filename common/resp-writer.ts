// Builds RESP replies into one growing buffer so that every reply produced while handling a
// socket read leaves in a single write (the whole point of pipelining).

const INITIAL_CAPACITY = 16 * 1024
/** A buffer grown past this (one huge reply) is not kept for the next round. */
const MAX_KEPT_CAPACITY = 1024 * 1024

export class RespWriter {
  private buffer = Buffer.allocUnsafe(INITIAL_CAPACITY)
  private length = 0

  simple(text: string): void {
    this.ascii(`+${text}\r\n`)
  }

  /** An error reply; message already carries its prefix (ERR, WRONGTYPE, …). */
  error(message: string): void {
    this.ascii(`-${message.replace(/[\r\n]+/g, ' ')}\r\n`)
  }

  integer(value: number): void {
    this.ascii(`:${value}\r\n`)
  }

  arrayHeader(count: number): void {
    this.ascii(`*${count}\r\n`)
  }

  nullBulk(): void {
    this.ascii('$-1\r\n')
  }

  /** A bulk string from a latin1 string (one char per byte), the shard's in-memory form. */
  bulkLatin1(value: string): void {
    this.ascii(`$${value.length}\r\n`)
    this.reserve(value.length + 2)
    this.length += this.buffer.write(value, this.length, 'latin1')
    this.buffer[this.length++] = 13
    this.buffer[this.length++] = 10
  }

  bulk(value: Buffer): void {
    this.ascii(`$${value.length}\r\n`)
    this.reserve(value.length + 2)
    this.length += value.copy(this.buffer, this.length)
    this.buffer[this.length++] = 13
    this.buffer[this.length++] = 10
  }

  /** A bulk string from text, sent as UTF-8 (INFO, ECHO of text). */
  bulkText(text: string): void {
    this.bulk(Buffer.from(text, 'utf8'))
  }

  /** Writes everything so far to the socket in one write and starts over. */
  writeTo(socket: { write(data: Buffer): boolean; readonly writableLength: number }): void {
    if (this.length === 0) return
    socket.write(this.buffer.subarray(0, this.length))
    // Nothing left queued means the kernel took the bytes already and the buffer is free to
    // reuse; otherwise the pending write still points into it, so start a new one.
    if (socket.writableLength > 0 || this.buffer.length > MAX_KEPT_CAPACITY) this.buffer = Buffer.allocUnsafe(INITIAL_CAPACITY)
    this.length = 0
  }

  /** Everything written so far as a Buffer of its own, and starts over. */
  take(): Buffer {
    const taken = Buffer.from(this.buffer.subarray(0, this.length))
    this.length = 0
    return taken
  }

  /** Bytes written since the last writeTo or take. */
  get pending(): number {
    return this.length
  }

  /** Drops everything written since the last writeTo. */
  discard(): void {
    this.length = 0
  }

  private ascii(text: string): void {
    this.reserve(text.length)
    this.length += this.buffer.write(text, this.length, 'latin1')
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes))
    this.buffer.copy(grown, 0, 0, this.length)
    this.buffer = grown
  }
}

