// Incremental parser for RESP requests (arrays of bulk strings, and inline commands) as a server
// reads them off a socket: resumable at any byte boundary and between any two commands, bounded
// in every length it accepts.

// Hand-written because the RESP server is the product: the npm parsers decode replies for
// clients and have no per-request limits, so a hostile peer could make them buffer without end.

export interface RespLimits {
  /** Largest bulk string accepted, in bytes. */
  maxBulkBytes: number
  /** Most elements in one request array. */
  maxArrayLength: number
  /** Longest inline command line (and array/bulk header line). */
  maxInlineBytes: number
  /**
   * Most bytes held for requests not executed yet (the buffered input and the arguments of an
   * unfinished array) after the parser has taken all it can; unbounded when absent.
   */
  maxQueryBufferBytes?: number
}

export const DEFAULT_RESP_LIMITS: RespLimits = {
  maxBulkBytes: 1024 * 1024 + 4096,
  maxArrayLength: 1024 * 1024,
  maxInlineBytes: 64 * 1024,
}

/** A malformed request: the server answers `-ERR Protocol error: …` and closes the connection. */
export class RespProtocolError extends Error {}

/** A request bigger than maxQueryBufferBytes: refused like a malformed one. */
export class RespQueryBufferError extends RespProtocolError {}

/**
 * Handles one complete command; returning false stops the parser until resume() is called. Each
 * argument is a view into the bytes given to push(), which the parser never changes: it stays
 * valid after the handler returns, for as long as it is kept, but keeps the whole chunk it lies in
 * alive (a socket read, up to 64 KiB, or a request split over reads joined into one): copy a small
 * argument that is to be kept long (a stored key or value).
 */
export type CommandHandler = (args: Buffer[]) => unknown

/** Like CommandHandler, with the arguments read in place (RespArgs), valid only until it returns. */
export type ArgsHandler = (args: RespArgs) => unknown

const EMPTY: Buffer = Buffer.alloc(0)
/** RespArgs keeps room for this many arguments from one command to the next (one MSET may have a million). */
const KEPT_ARGS = 64

/**
 * One command's arguments where they lie in the bytes received, read without an object per
 * argument. Valid only while the ArgsHandler it was given to runs: the parser reuses it for the
 * next command. What buffer() and toArray() return is valid as CommandHandler's arguments are.
 */
export class RespArgs {
  /** Arguments, the command name included. */
  count = 0
  // Argument i is sources[i][starts[i] .. ends[i]); an array split over reads spans several sources.
  private sources: Buffer[] = []
  private starts: number[] = []
  private ends: number[] = []

  byteLength(i: number): number {
    return this.ends[i] - this.starts[i]
  }

  /** Argument i as a latin1 string: one char per byte, any bytes. */
  latin1(i: number): string {
    return this.sources[i].toString('latin1', this.starts[i], this.ends[i])
  }

  /** Argument i as a Buffer (a view into the bytes received, no copy). */
  buffer(i: number): Buffer {
    return this.sources[i].subarray(this.starts[i], this.ends[i])
  }

  /** True when argument i is name in any letter case; name is lower-case ASCII. */
  is(i: number, name: string): boolean {
    const source = this.sources[i]
    const start = this.starts[i]
    if (this.ends[i] - start !== name.length) return false
    for (let j = 0; j < name.length; j++) {
      const expected = name.charCodeAt(j)
      const byte = source[start + j]
      if (byte !== expected && (expected < 97 || expected > 122 || byte !== expected - 32)) return false
    }
    return true
  }

  /** Byte j of argument i (j below byteLength(i)). */
  byteAt(i: number, j: number): number {
    return this.sources[i][this.starts[i] + j]
  }

  /** Copies argument i into target at offset; returns the bytes copied. */
  copyTo(i: number, target: Buffer, offset: number): number {
    return this.sources[i].copy(target, offset, this.starts[i], this.ends[i])
  }

  /** Every argument as a Buffer, as CommandHandler receives them. */
  toArray(): Buffer[] {
    const args: Buffer[] = []
    for (let i = 0; i < this.count; i++) args.push(this.buffer(i))
    return args
  }

  /** @internal The parser's: appends an argument. */
  add(source: Buffer, start: number, end: number): void {
    const i = this.count++
    this.sources[i] = source
    this.starts[i] = start
    this.ends[i] = end
  }

  /** @internal The parser's: empties it, keeping no received bytes alive, nor the room a long array took. */
  clear(): void {
    if (this.count > KEPT_ARGS) {
      this.sources = []
      this.starts = []
      this.ends = []
    } else {
      for (let i = 0; i < this.count; i++) this.sources[i] = EMPTY
    }
    this.count = 0
  }
}

const CR = 13
const LF = 10
const STAR = 42
const DOLLAR = 36
const HEADER_LINE_MAX = 32

export class RespRequestParser {
  private readonly limits: RespLimits
  private chunks: Buffer[] = []
  private buffered = 0
  /** Bytes that must be buffered before parsing can make progress again. */
  private needed = 1
  /** Arguments of the command being read, reused from one command to the next. */
  private readonly args = new RespArgs()
  /** Elements of the array being read still to come; 0 when between commands. */
  private argsRemaining = 0
  private argsBytes = 0
  /** Set when onCommand asked to stop: what is buffered is parsed on resume(). */
  private stopped = false

  constructor(limits: RespLimits = DEFAULT_RESP_LIMITS) {
    this.limits = limits
  }

  /**
   * Feeds bytes and calls onCommand for every complete command, until one call returns false.
   * Returns false when it stopped so (resume() goes on from there), true when every complete
   * command was handled. Throws RespProtocolError.
   */
  push(chunk: Buffer, onCommand: CommandHandler): boolean {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    return this.drain(onCommand, true)
  }

  /** Goes on after a stop with what is buffered, as push does with a new chunk. */
  resume(onCommand: CommandHandler): boolean {
    return this.drain(onCommand, true)
  }

  /** push() for a handler that reads the arguments in place, without a Buffer per argument. */
  pushArgs(chunk: Buffer, onArgs: ArgsHandler): boolean {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    return this.drain(onArgs, false)
  }

  /** resume() for an ArgsHandler. */
  resumeArgs(onArgs: ArgsHandler): boolean {
    return this.drain(onArgs, false)
  }

  /** Bytes held for commands not handled yet: buffered input and the arguments of an unfinished array. */
  get heldBytes(): number {
    return this.buffered + this.argsBytes
  }

  /** True while part of a command has arrived and the rest has not (or, after a stop, is not parsed yet). */
  get midRequest(): boolean {
    return this.argsRemaining > 0 || this.buffered > 0
  }

  private drain(handler: CommandHandler | ArgsHandler, asArray: boolean): boolean {
    this.stopped = false
    if (this.buffered >= this.needed) {
      const data = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered)
      const consumed = this.parse(data, handler, asArray)
      const rest = data.length - consumed
      this.chunks = rest > 0 ? [data.subarray(consumed)] : []
      this.buffered = rest
    }
    if (this.heldBytes > (this.limits.maxQueryBufferBytes ?? Infinity)) throw new RespQueryBufferError('query buffer limit exceeded')
    return !this.stopped
  }

  // Parses as many whole elements as data holds, or up to a stop; returns the bytes consumed and
  // sets this.needed to the total length the buffer must reach before a retry can progress.
  private parse(data: Buffer, handler: CommandHandler | ArgsHandler, asArray: boolean): number {
    let pos = 0
    const end = data.length
    while (pos < end) {
      if (this.argsRemaining === 0) {
        if (data[pos] === STAR) {
          const lineEnd = this.findLineEnd(data, pos, HEADER_LINE_MAX, 'invalid multibulk length')
          if (lineEnd < 0) break
          const count = parseLength(data, pos + 1, lineEnd, 'invalid multibulk length')
          pos = lineEnd + 2
          if (count > this.limits.maxArrayLength) throw new RespProtocolError('invalid multibulk length')
          if (count > 0) this.argsRemaining = count
        } else {
          const lineEnd = this.findInlineEnd(data, pos)
          if (lineEnd < 0) break
          splitInline(data, pos, lineEnd, this.args)
          pos = lineEnd + 1
          if (this.args.count > 0 && this.deliver(handler, asArray) === false) return this.stop(pos)
        }
        continue
      }
      if (data[pos] !== DOLLAR) {
        throw new RespProtocolError(`expected '$', got '${String.fromCharCode(data[pos])}'`)
      }
      const lineEnd = this.findLineEnd(data, pos, HEADER_LINE_MAX, 'invalid bulk length')
      if (lineEnd < 0) break
      const length = parseLength(data, pos + 1, lineEnd, 'invalid bulk length')
      if (length < 0 || length > this.limits.maxBulkBytes) throw new RespProtocolError('invalid bulk length')
      const bodyStart = lineEnd + 2
      const bodyEnd = bodyStart + length
      if (bodyEnd + 2 > end) {
        this.needed = bodyEnd + 2 - pos
        return pos
      }
      if (data[bodyEnd] !== CR || data[bodyEnd + 1] !== LF) throw new RespProtocolError('bulk string not terminated by CRLF')
      this.args.add(data, bodyStart, bodyEnd)
      this.argsBytes += length
      pos = bodyEnd + 2
      if (--this.argsRemaining === 0) {
        this.argsBytes = 0
        if (this.deliver(handler, asArray) === false) return this.stop(pos)
      }
    }
    this.needed = end - pos + 1
    return pos
  }

  // Hands the command read to the handler and empties args for the next one.
  private deliver(handler: CommandHandler | ArgsHandler, asArray: boolean): unknown {
    try {
      return asArray ? (handler as CommandHandler)(this.args.toArray()) : (handler as ArgsHandler)(this.args)
    } finally {
      this.args.clear()
    }
  }

  // After a stop, whatever is buffered may hold whole commands: resume() must parse it.
  private stop(pos: number): number {
    this.stopped = true
    this.needed = 0
    return pos
  }

  // Index of the CR of a header line ending in CRLF, or -1 while the line is incomplete.
  private findLineEnd(data: Buffer, start: number, maxLength: number, what: string): number {
    const limit = Math.min(data.length, start + maxLength)
    for (let i = start + 1; i < limit; i++) {
      if (data[i] === CR) {
        if (i + 1 >= data.length) return -1
        if (data[i + 1] !== LF) throw new RespProtocolError(what)
        return i
      }
    }
    if (limit - start >= maxLength) throw new RespProtocolError(what)
    return -1
  }

  private findInlineEnd(data: Buffer, start: number): number {
    const newline = data.indexOf(LF, start)
    if (newline >= 0 && newline - start <= this.limits.maxInlineBytes) return newline
    if (newline < 0 && data.length - start <= this.limits.maxInlineBytes) return -1
    throw new RespProtocolError('too big inline request')
  }
}

function parseLength(data: Buffer, start: number, end: number, what: string): number {
  let negative = false
  let i = start
  if (data[i] === 45 /* - */) {
    negative = true
    i++
  }
  if (i >= end) throw new RespProtocolError(what)
  let value = 0
  for (; i < end; i++) {
    const digit = data[i] - 48
    if (digit < 0 || digit > 9) throw new RespProtocolError(what)
    value = value * 10 + digit
  }
  return negative ? -value : value
}

// Inline commands (what `telnet` or `nc` users type) are split on spaces and tabs; unlike
// Redis, quotes are not interpreted: use a RESP client for values with spaces.
function splitInline(data: Buffer, start: number, newline: number, args: RespArgs): void {
  const end = newline > start && data[newline - 1] === CR ? newline - 1 : newline
  let wordStart = -1
  for (let i = start; i <= end; i++) {
    const isSpace = i === end || data[i] === 32 || data[i] === 9
    if (isSpace) {
      if (wordStart >= 0) args.add(data, wordStart, i)
      wordStart = -1
    } else if (wordStart < 0) {
      wordStart = i
    }
  }
}
