// Builds RESP replies into one growing buffer so that every reply produced while handling a
// socket read leaves in a single write (the whole point of pipelining).

const INITIAL_CAPACITY = 16 * 1024

export class RespWriter {
  private buffer = Buffer.allocUnsafe(INITIAL_CAPACITY)
  private length = 0

  get pendingBytes(): number {
    return this.length
  }

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

  /** Hands over everything written so far and starts a fresh buffer. */
  take(): Buffer {
    const out = this.buffer.subarray(0, this.length)
    this.buffer = Buffer.allocUnsafe(Math.max(INITIAL_CAPACITY, Math.min(this.buffer.length, 1024 * 1024)))
    this.length = 0
    return out
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

