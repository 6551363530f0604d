// Incremental parser for RESP2 replies as a client reads them: simple strings, errors, integers
// (exact at any size), bulk strings (as Buffers) and nested arrays, resumable at any byte boundary.

// Hand-written for the same reason as the request parser: the router's link to its shards is
// the product, and it needs replies as raw Buffers with no copy or decoding it does not ask for.

/** An `-ERR …` reply from the server: a value, not a broken connection. */
export class RespErrorReply extends Error {}

/** Integers are numbers while they are safe integers, bigints past 2^53 (counters are 64-bit). */
export type RespReply = string | number | bigint | Buffer | null | RespErrorReply | RespReply[]

/** Bytes that are not RESP: the stream cannot be read further. */
export class RespReplyParseError extends Error {}

const CR = 13
const LF = 10
const MINUS = 45
const ZERO = 48
/** Up to this many digits an integer is below 2^53, so adding up its digits as a number is exact. */
const EXACT_DIGITS = 15
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const MIN_SAFE = -MAX_SAFE

interface Parsed {
  value: RespReply
  end: number
}

export class RespReplyParser {
  /** An unfinished reply's bytes as they came: joined once there are enough to finish it. */
  private pending: Buffer[] = []
  private pendingBytes = 0
  /** How many bytes the unfinished reply needs at least before parsing it again can succeed. */
  private neededBytes = 0
  /** Where in the buffer being parsed the unfinished reply needs it to reach (set by parseAt). */
  private neededEnd = 0

  /** Feeds bytes and calls onReply for every complete top-level reply. Throws RespReplyParseError. */
  push(chunk: Buffer, onReply: (reply: RespReply) => void): void {
    let data = chunk
    if (this.pending.length > 0) {
      this.pending.push(chunk)
      this.pendingBytes += chunk.length
      // A large bulk reply comes in many reads: joining them once, not at every read, keeps
      // reading it linear in its size.
      if (this.pendingBytes < this.neededBytes) return
      data = Buffer.concat(this.pending, this.pendingBytes)
      this.pending = []
    }
    let pos = 0
    while (pos < data.length) {
      const parsed = this.parseAt(data, pos)
      if (parsed === undefined) {
        this.pending = [data.subarray(pos)]
        this.pendingBytes = data.length - pos
        this.neededBytes = this.neededEnd - pos
        return
      }
      pos = parsed.end
      onReply(parsed.value)
    }
  }

  // Parses one reply starting at pos; undefined (with neededEnd set) when the buffer does not yet
  // hold all of it.
  private parseAt(data: Buffer, pos: number): Parsed | undefined {
    if (pos >= data.length) {
      this.neededEnd = pos + 1
      return undefined
    }
    const type = data[pos]
    // Checked before waiting for the line's end, so that bytes which are not RESP fail at once.
    if (type !== 43 && type !== 45 && type !== 58 && type !== 36 && type !== 42) throw new RespReplyParseError(`unexpected reply type byte ${type}`)
    const lineEnd = data.indexOf(CR, pos)
    if (lineEnd < 0 || lineEnd + 1 >= data.length) {
      this.neededEnd = data.length + 1
      return undefined
    }
    if (data[lineEnd + 1] !== LF) throw new RespReplyParseError('a reply line ends in CR without LF')
    const next = lineEnd + 2
    switch (type) {
      case 43: // +
        return { value: data.toString('latin1', pos + 1, lineEnd), end: next }
      case 45: // -
        return { value: new RespErrorReply(data.toString('utf8', pos + 1, lineEnd)), end: next }
      case 58: // :
        return { value: integerAt(data, pos + 1, lineEnd), end: next }
      case 36: { // $
        const length = lengthAt(data, pos + 1, lineEnd)
        if (length < 0) return { value: null, end: next }
        if (next + length + 2 > data.length) {
          this.neededEnd = next + length + 2
          return undefined
        }
        if (data[next + length] !== CR || data[next + length + 1] !== LF) throw new RespReplyParseError(`a bulk reply of ${length} bytes does not end in CRLF`)
        return { value: data.subarray(next, next + length), end: next + length + 2 }
      }
      default: { // * (the only type left)
        const count = lengthAt(data, pos + 1, lineEnd)
        if (count < 0) return { value: null, end: next }
        const items: RespReply[] = []
        let at = next
        for (let i = 0; i < count; i++) {
          const item = this.parseAt(data, at)
          if (item === undefined) return undefined
          items.push(item.value)
          at = item.end
        }
        return { value: items, end: at }
      }
    }
  }
}

// Reads the digits straight from the bytes: the common small integer costs no string.
function integerAt(data: Buffer, start: number, end: number): number | bigint {
  const first = data[start] === MINUS ? start + 1 : start
  if (first === end) throw invalidInteger(data, start, end)
  let value = 0
  for (let i = first; i < end; i++) {
    const digit = data[i] - ZERO
    if (digit < 0 || digit > 9) throw invalidInteger(data, start, end)
    value = value * 10 + digit
  }
  // 0 - value, not -value: "-0" is the integer 0, not the float -0.
  if (end - first <= EXACT_DIGITS) return first === start ? value : 0 - value
  const exact = BigInt(data.toString('latin1', start, end))
  return exact >= MIN_SAFE && exact <= MAX_SAFE ? Number(exact) : exact
}

/** A bulk length or array count: -1 (a null reply) or more. */
function lengthAt(data: Buffer, start: number, end: number): number {
  const length = integerAt(data, start, end)
  if (typeof length !== 'number' || length < -1) throw new RespReplyParseError(`invalid length in reply: ${data.toString('latin1', start, end)}`)
  return length
}

function invalidInteger(data: Buffer, start: number, end: number): RespReplyParseError {
  return new RespReplyParseError(`invalid integer in reply: ${JSON.stringify(data.toString('latin1', start, end))}`)
}
