// Builds RESP replies so that every reply produced while handling a socket read leaves in one
// write (the whole point of pipelining), copying each byte once: replies are packed into buffers
// from a pool shared by all writers, big Buffer values travel as they are.

const INITIAL_CAPACITY = 16 * 1024
/** Packing buffers double up to this size; a bigger one (one huge reply) is not pooled. */
const MAX_POOLED_CAPACITY = 1024 * 1024
/** Most bytes of free packing buffers the pool keeps, all writers in the process together. */
const POOL_BYTES = 4 * 1024 * 1024
/** A Buffer value this big is not copied into the packing buffer but sent as it is. */
const OWN_BUFFER_BYTES = 64 * 1024
const EMPTY: Buffer = Buffer.alloc(0)
/** Text up to this long is copied char by char; longer text goes through Buffer.write. */
const SHORT_TEXT = 16
/** The longest header line: a type byte, a sign, the 16 digits of a safe integer, CRLF. */
const HEADER_MAX_BYTES = 20
const PLUS = 43
const MINUS = 45
const COLON = 58
const STAR = 42
const DOLLAR = 36

/**
 * Free packing buffers. A writer holds one only while it has replies to send, so what thousands
 * of idle connections keep does not grow with their number, while busy writers keep writing into
 * memory that is already paged in (fresh memory costs a page fault per 4 KiB).
 */
class BufferPool {
  private readonly free: Buffer[] = []
  private bytes = 0

  /**
   * The biggest free buffer, if it holds minBytes (so that a round's replies fit in one buffer
   * and leave in one write), or a new one.
   */
  take(minBytes: number): Buffer {
    let best = -1
    for (let i = 0; i < this.free.length; i++) {
      if (best < 0 || this.free[i].length > this.free[best].length) best = i
    }
    if (best < 0 || this.free[best].length < minBytes) return Buffer.allocUnsafe(minBytes)
    const [buffer] = this.free.splice(best, 1)
    this.bytes -= buffer.length
    return buffer
  }

  /** A buffer nothing refers to any more. */
  give(buffer: Buffer): void {
    if (buffer.length > MAX_POOLED_CAPACITY || this.bytes + buffer.length > POOL_BYTES) return
    this.free.push(buffer)
    this.bytes += buffer.length
  }
}

const pool = new BufferPool()

/** The bytes a bulk reply of length bytes takes on the wire (-1: the null reply). */
export function bulkReplyBytes(length: number): number {
  return length < 0 ? 5 : 1 + String(length).length + 2 + length + 2
}

export interface WritableSocket {
  write(data: Buffer, onWritten?: (error?: Error | null) => void): boolean
  cork(): void
  uncork(): void
  readonly writableLength: number
}

export class RespWriter {
  private buffer: Buffer = EMPTY
  /** Packing buffers filled earlier since the last writeTo (their bytes are in pieces). */
  private readonly filled: Buffer[] = []
  /** Where the part of buffer not yet in pieces starts, and where the next byte goes. */
  private segmentStart = 0
  private length = 0
  /** What was written before the current segment, in order: packed segments and big values. */
  private readonly pieces: Buffer[] = []
  private piecesBytes = 0

  simple(text: string): void {
    this.reserve(text.length + 3)
    this.buffer[this.length++] = PLUS
    this.ascii(text)
    this.crlf()
  }

  /** An error reply; message already carries its prefix (ERR, WRONGTYPE, …). */
  error(message: string): void {
    this.ascii(`-${message.replace(/[\r\n]+/g, ' ')}\r\n`)
  }

  integer(value: number | bigint): void {
    if (typeof value === 'number' && Number.isSafeInteger(value)) this.header(COLON, value)
    else this.ascii(`:${value}\r\n`)
  }

  arrayHeader(count: number): void {
    this.header(STAR, count)
  }

  nullBulk(): void {
    this.ascii('$-1\r\n')
  }

  /** A bulk string from a latin1 string (one char per byte), the shard's in-memory form. */
  bulkLatin1(value: string): void {
    // One reply, one buffer: header, value and CRLF together.
    this.reserve(HEADER_MAX_BYTES + value.length + 2)
    this.header(DOLLAR, value.length)
    this.length += this.buffer.write(value, this.length, 'latin1')
    this.crlf()
  }

  /** A bulk string; a big one is sent as the very buffer given, which must not change until written. */
  bulk(value: Buffer): void {
    if (value.length >= OWN_BUFFER_BYTES) {
      this.header(DOLLAR, value.length)
      this.addPiece(value)
    } else {
      this.reserve(HEADER_MAX_BYTES + value.length + 2)
      this.header(DOLLAR, value.length)
      this.length += value.copy(this.buffer, this.length)
    }
    this.crlf()
  }

  /** A bulk string from text, sent as UTF-8 (INFO, ECHO of text). */
  bulkText(text: string): void {
    this.bulk(Buffer.from(text, 'utf8'))
  }

  /**
   * Writes everything so far to the socket, as one write (several pieces go corked, as one
   * writev), and starts over. onWritten is called once the socket has handed all of it to the
   * kernel (or has failed).
   */
  writeTo(socket: WritableSocket, onWritten?: (error?: Error | null) => void): void {
    if (this.pending === 0) return
    this.endSegment()
    const pieces = this.pieces
    if (pieces.length > 1) socket.cork()
    for (let i = 0; i < pieces.length; i++) socket.write(pieces[i], i === pieces.length - 1 ? onWritten : undefined)
    if (pieces.length > 1) socket.uncork()
    // Nothing left queued means the kernel took the bytes already and the buffers are free to
    // reuse; otherwise the pending write still points into them, and they are left to it.
    if (socket.writableLength === 0) this.release()
    this.buffer = EMPTY
    this.filled.length = 0
    this.startOver()
  }

  /** Everything written so far as a Buffer of its own, and starts over. */
  take(): Buffer {
    this.endSegment()
    const taken = Buffer.concat(this.pieces, this.piecesBytes)
    this.discard()
    return taken
  }

  /** Bytes written since the last writeTo or take. */
  get pending(): number {
    return this.piecesBytes + this.length - this.segmentStart
  }

  /** Drops everything written since the last writeTo. */
  discard(): void {
    this.release()
    this.startOver()
  }

  private release(): void {
    for (const buffer of this.filled) pool.give(buffer)
    if (this.buffer !== EMPTY) pool.give(this.buffer)
    this.filled.length = 0
    this.buffer = EMPTY
  }

  private startOver(): void {
    this.pieces.length = 0
    this.piecesBytes = 0
    this.segmentStart = 0
    this.length = 0
  }

  private ascii(text: string): void {
    this.reserve(text.length)
    // A call into C++ costs more than copying a few chars here.
    if (text.length > SHORT_TEXT) {
      this.length += this.buffer.write(text, this.length, 'latin1')
      return
    }
    for (let i = 0; i < text.length; i++) this.buffer[this.length++] = text.charCodeAt(i)
  }

  // A line of a type byte and a safe integer in decimal (`$5\r\n`, `:-1\r\n`), made without a string.
  private header(type: number, value: number): void {
    this.reserve(HEADER_MAX_BYTES)
    const buffer = this.buffer
    buffer[this.length++] = type
    if (value < 0) buffer[this.length++] = MINUS
    let rest = Math.abs(value)
    let digits = 1
    for (let power = 10; power <= rest; power *= 10) digits++
    this.length += digits
    for (let at = this.length - 1; digits > 0; digits--, at--) {
      buffer[at] = 48 + (rest % 10)
      rest = Math.floor(rest / 10)
    }
    buffer[this.length++] = 13
    buffer[this.length++] = 10
  }

  private crlf(): void {
    this.reserve(2)
    this.buffer[this.length++] = 13
    this.buffer[this.length++] = 10
  }

  // Ends the current segment and queues value after it; packing goes on in the same buffer.
  private addPiece(value: Buffer): void {
    this.endSegment()
    this.pieces.push(value)
    this.piecesBytes += value.length
  }

  private endSegment(): void {
    if (this.length === this.segmentStart) return
    this.pieces.push(this.buffer.subarray(this.segmentStart, this.length))
    this.piecesBytes += this.length - this.segmentStart
    this.segmentStart = this.length
  }

  // A full buffer is left to the segments that point into it and a bigger one (doubling, up to
  // MAX_POOLED_CAPACITY, or as big as one reply needs) takes over: nothing written is copied again.
  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return
    this.endSegment()
    if (this.buffer !== EMPTY) this.filled.push(this.buffer)
    this.buffer = pool.take(Math.max(bytes, INITIAL_CAPACITY, Math.min(this.buffer.length * 2, MAX_POOLED_CAPACITY)))
    this.segmentStart = 0
    this.length = 0
  }
}
