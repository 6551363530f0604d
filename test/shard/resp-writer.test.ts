// The RESP writer the shard answers with (common/resp-writer.ts): every reply type byte for byte,
// big values in their own pieces yet in order and in one corked write, exact integers past 2^53,
// and the reply sizes MGET checks before it writes.
import t from 'tap'
import { bulkReplyBytes, RespWriter, type WritableSocket } from '../../common/resp-writer.ts'

/** A socket that keeps what is written, and how. */
function fakeSocket() {
  const writes: Buffer[] = []
  const callbacks: Array<(() => void) | undefined> = []
  let corked = 0
  let writesWhileCorked = 0
  const socket: WritableSocket = {
    write(data, onWritten) {
      writes.push(Buffer.from(data))
      callbacks.push(onWritten as (() => void) | undefined)
      if (corked > 0) writesWhileCorked++
      return true
    },
    cork: () => corked++,
    uncork: () => corked--,
    writableLength: 0,
  }
  return { socket, writes, callbacks, corked: () => corked, writesWhileCorked: () => writesWhileCorked }
}

t.test('every reply type, byte for byte, exact past 2^53', async (t) => {
  const writer = new RespWriter()
  writer.simple('OK')
  writer.error('ERR bad\r\nthing')
  writer.integer(-5)
  writer.integer(2n ** 63n - 1n)
  writer.nullBulk()
  writer.arrayHeader(2)
  writer.bulkLatin1('h\u00e9')
  writer.bulk(Buffer.from([0, 13, 10]))
  const expected = '+OK\r\n-ERR bad thing\r\n:-5\r\n:9223372036854775807\r\n$-1\r\n*2\r\n$2\r\nh\u00e9\r\n$3\r\n\u0000\r\n\r\n'
  t.equal(writer.pending, Buffer.byteLength(expected, 'latin1'))
  t.equal(writer.take().toString('latin1'), expected)
  t.equal(writer.pending, 0, 'take starts over')
})

t.test('big values leave in order, in one corked write, and a big Buffer is not copied', async (t) => {
  const writer = new RespWriter()
  const bigText = 'x'.repeat(1536 * 1024)
  const bigBuffer = Buffer.alloc(200 * 1024, 7)
  writer.simple('first')
  writer.bulkLatin1(bigText)
  writer.bulk(bigBuffer)
  for (let i = 0; i < 1000; i++) writer.integer(i)
  const { socket, writes, callbacks, corked, writesWhileCorked } = fakeSocket()
  let written = 0
  writer.writeTo(socket, () => written++)
  const expected = Buffer.concat([
    Buffer.from(`+first\r\n$${bigText.length}\r\n${bigText}\r\n$${bigBuffer.length}\r\n`, 'latin1'),
    bigBuffer,
    Buffer.from(`\r\n${Array.from({ length: 1000 }, (_, i) => `:${i}\r\n`).join('')}`),
  ])
  t.ok(Buffer.concat(writes).equals(expected), 'the bytes, in order')
  t.ok(writes.length > 1 && writesWhileCorked() === writes.length && corked() === 0, `${writes.length} pieces, all corked into one write`)
  t.equal(callbacks.filter(Boolean).length, 1, 'onWritten goes with the last piece only')
  callbacks.at(-1)!()
  t.equal(written, 1)
  t.equal(writer.pending, 0)
  writer.simple('next')
  const next = fakeSocket()
  writer.writeTo(next.socket)
  t.same(next.writes.map(String), ['+next\r\n'], 'small replies leave in a single plain write')
})

t.test('bulkReplyBytes is the size of what bulk writes', async (t) => {
  for (const length of [-1, 0, 9, 10, 99_999, 1024 * 1024]) {
    const writer = new RespWriter()
    if (length < 0) writer.nullBulk()
    else writer.bulkLatin1('v'.repeat(length))
    t.equal(bulkReplyBytes(length), writer.pending, `length ${length}`)
  }
})

t.test('integer and length lines made digit by digit read as the decimal text would', async (t) => {
  const writer = new RespWriter()
  const numbers = [0, -0, 1, -1, 9, 10, 99, 100, 12345, -12345, 2 ** 31, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]
  let expected = ''
  for (const value of numbers) {
    writer.integer(value)
    writer.arrayHeader(Math.abs(value))
    expected += `:${value}\r\n*${Math.abs(value)}\r\n`
  }
  for (const length of [0, 1, 9, 10, 99, 100, 1000]) {
    writer.bulkLatin1('x'.repeat(length))
    writer.bulk(Buffer.alloc(length, 'y'))
    writer.simple('z'.repeat(length))
    expected += `$${length}\r\n${'x'.repeat(length)}\r\n$${length}\r\n${'y'.repeat(length)}\r\n+${'z'.repeat(length)}\r\n`
  }
  t.equal(writer.take().toString('latin1'), expected)
})
