// Incremental parser for RESP2 replies as a client reads them: simple strings, errors, integers,
// bulk strings (as Buffers) and nested arrays, resumable at any byte boundary.

// Hand-written for the same reason as the request parser: the router's link to its shards is
// the product, and it needs replies as raw Buffers with no copy or decoding it does not ask for.

/** An `-ERR …` reply from the server: a value, not a broken connection. */
export class RespErrorReply extends Error {}

export type RespReply = string | number | Buffer | null | RespErrorReply | RespReply[]

export class RespReplyParseError extends Error {}

const CR = 13

export class RespReplyParser {
  private pending: Buffer | null = null

  /** Feeds bytes and calls onReply for every complete top-level reply. Throws RespReplyParseError. */
  push(chunk: Buffer, onReply: (reply: RespReply) => void): void {
    const data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk
    let pos = 0
    while (pos < data.length) {
      const parsed = parseAt(data, pos)
      if (parsed === undefined) break
      pos = parsed.end
      onReply(parsed.value)
    }
    this.pending = pos < data.length ? data.subarray(pos) : null
  }
}

interface Parsed {
  value: RespReply
  end: number
}

// Parses one reply starting at pos; undefined when the buffer does not yet hold all of it.
function parseAt(data: Buffer, pos: number): Parsed | undefined {
  const lineEnd = data.indexOf(CR, pos)
  if (lineEnd < 0 || lineEnd + 1 >= data.length) return undefined
  const type = data[pos]
  const next = lineEnd + 2
  switch (type) {
    case 43: // +
      return { value: data.toString('latin1', pos + 1, lineEnd), end: next }
    case 45: // -
      return { value: new RespErrorReply(data.toString('utf8', pos + 1, lineEnd)), end: next }
    case 58: // :
      return { value: toInteger(data, pos + 1, lineEnd), end: next }
    case 36: { // $
      const length = toInteger(data, pos + 1, lineEnd)
      if (length < 0) return { value: null, end: next }
      if (next + length + 2 > data.length) return undefined
      return { value: data.subarray(next, next + length), end: next + length + 2 }
    }
    case 42: { // *
      const count = toInteger(data, pos + 1, lineEnd)
      if (count < 0) return { value: null, end: next }
      const items: RespReply[] = []
      let at = next
      for (let i = 0; i < count; i++) {
        const item = parseAt(data, at)
        if (item === undefined) return undefined
        items.push(item.value)
        at = item.end
      }
      return { value: items, end: at }
    }
    default:
      throw new RespReplyParseError(`unexpected reply type byte ${type}`)
  }
}

function toInteger(data: Buffer, start: number, end: number): number {
  const value = Number(data.toString('latin1', start, end))
  if (!Number.isSafeInteger(value)) throw new RespReplyParseError(`invalid integer in reply: ${data.toString('latin1', start, end)}`)
  return value
}
