// The RESP reply parser the router reads its shards with: integers exact at any size (numbers while
// safe, bigints past 2^53), replies split at every byte boundary, and malformed framing refused.
import t from 'tap'
import fc from 'fast-check'
import { RespErrorReply, RespReplyParseError, RespReplyParser, type RespReply } from '../../common/resp-reply-parser.ts'

function parseAll(chunks: Buffer[]): RespReply[] {
  const parser = new RespReplyParser()
  const replies: RespReply[] = []
  for (const chunk of chunks) parser.push(chunk, (reply) => replies.push(reply))
  return replies
}

const INTEGERS: Array<[string, number | bigint]> = [
  ['0', 0],
  ['-1', -1],
  ['-0', 0],
  ['42', 42],
  ['999999999999999', 999_999_999_999_999],
  ['-1000000000000000', -1_000_000_000_000_000],
  [String(2 ** 53 - 1), Number.MAX_SAFE_INTEGER],
  [String(-(2 ** 53 - 1)), Number.MIN_SAFE_INTEGER],
  ['9007199254740992', 2n ** 53n],
  ['-9007199254740992', -(2n ** 53n)],
  ['9223372036854775807', 2n ** 63n - 1n],
  ['-9223372036854775808', -(2n ** 63n)],
  ['18446744073709551616', 2n ** 64n],
]

t.test('integers are exact: numbers while safe, bigints past 2^53', async (t) => {
  const replies = parseAll([Buffer.from(INTEGERS.map(([text]) => `:${text}\r\n`).join(''))])
  t.equal(replies.length, INTEGERS.length)
  INTEGERS.forEach(([text, expected], i) => {
    t.equal(typeof replies[i], typeof expected, `${text} is a ${typeof expected}`)
    t.ok(Object.is(replies[i], expected), `${text} reads as ${expected}`)
  })
})

t.test('every reply type reads the same when split at every byte boundary', async (t) => {
  const binary = Buffer.from([0, 13, 10, 255, 36, 42])
  const stream = Buffer.concat([
    Buffer.from(INTEGERS.map(([text]) => `:${text}\r\n`).join('')),
    Buffer.from('+PONG\r\n-ERR increment or decrement would overflow\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n'),
    Buffer.from(`$${binary.length}\r\n`), binary, Buffer.from('\r\n'),
    Buffer.from('*4\r\n$1\r\nv\r\n:3602879701896396800\r\n:0\r\n*2\r\n:-9223372036854775808\r\n$-1\r\n'),
  ])
  const whole = parseAll([stream])
  t.equal(whole.length, INTEGERS.length + 8)
  t.same(whole.slice(INTEGERS.length), [
    'PONG', new RespErrorReply('ERR increment or decrement would overflow'), null, null, [], Buffer.alloc(0), binary,
    [Buffer.from('v'), 3602879701896396800n, 0, [-(2n ** 63n), null]],
  ])
  t.equal((whole[INTEGERS.length + 1] as Error).message, 'ERR increment or decrement would overflow')
  for (let i = 1; i < stream.length; i++) {
    t.same(parseAll([stream.subarray(0, i), stream.subarray(i)]), whole, `split at ${i}`)
  }
  t.same(parseAll([...stream].map((byte) => Buffer.from([byte]))), whole, 'one byte at a time')
})

t.test('a large bulk reply arriving in many reads is joined once, not at every read', async (t) => {
  const value = Buffer.alloc(1024 * 1024, 'x')
  const stream = Buffer.concat([Buffer.from(`$${value.length}\r\n`), value, Buffer.from('\r\n:1\r\n')])
  const concat = t.capture(Buffer, 'concat', Buffer.concat)
  const chunks = Array.from({ length: Math.ceil(stream.length / 65536) }, (_, i) => stream.subarray(i * 65536, (i + 1) * 65536))
  const replies = parseAll(chunks)
  t.equal(replies.length, 2)
  t.ok(value.equals(replies[0] as Buffer))
  t.equal(replies[1], 1)
  t.ok(concat.args().length <= 2, `${concat.args().length} joins for ${chunks.length} reads`)
})

t.test('malformed framing throws RespReplyParseError', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['?what\r\n', /unexpected reply type byte 63/],
    [':\r\n', /invalid integer/],
    [':-\r\n', /invalid integer/],
    [':12a\r\n', /invalid integer/],
    [':1.5\r\n', /invalid integer/],
    [': 1\r\n', /invalid integer/],
    ['$abc\r\n', /invalid integer/],
    ['$-2\r\n', /invalid length/],
    ['*-7\r\n', /invalid length/],
    ['$99999999999999999999\r\n', /invalid length/],
    ['$3\r\nabcXY', /does not end in CRLF/],
    ['+OK\rX', /CR without LF/],
    ['*2\r\n:1\r\n!\r\n', /unexpected reply type byte 33/],
  ]
  for (const [input, message] of cases) {
    t.throws(() => parseAll([Buffer.from(input)]), { constructor: RespReplyParseError, message }, JSON.stringify(input))
  }
})

t.test('random bytes either parse or throw RespReplyParseError, never anything else', async (t) => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 4 }), (chunks) => {
    try {
      parseAll(chunks.map((chunk) => Buffer.from(chunk)))
      return true
    } catch (error) {
      return error instanceof RespReplyParseError
    }
  }), { numRuns: 2000 })
  fc.assert(fc.property(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), (value) => {
    const [reply] = parseAll([Buffer.from(`:${value}\r\n`)])
    return BigInt(reply as number | bigint) === value && (typeof reply === 'number') === (value >= -(2n ** 53n - 1n) && value <= 2n ** 53n - 1n)
  }), { numRuns: 2000 })
  t.pass('4000 random inputs')
})
