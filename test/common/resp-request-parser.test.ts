// The RESP request parser: whole and split frames, inline commands, stops and resumes, limits,
// the query buffer bound, and random input (fast-check): commands or RespProtocolError, nothing else.
import t from 'tap'
import fc from 'fast-check'
import { DEFAULT_RESP_LIMITS, RespProtocolError, RespQueryBufferError, RespRequestParser, type RespArgs, type RespLimits } from '../../common/resp-request-parser.ts'

const encode = (...args: (string | Buffer)[]): Buffer =>
  Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap((a) => [Buffer.from(`$${Buffer.byteLength(a)}\r\n`), Buffer.from(a), Buffer.from('\r\n')])])

function parseAll(chunks: Buffer[], limits?: RespLimits): string[][] {
  const parser = new RespRequestParser(limits)
  const commands: string[][] = []
  for (const chunk of chunks) parser.push(chunk, (args) => commands.push(args.map((a) => a.toString('latin1'))))
  return commands
}

t.test('parses pipelined commands in one chunk', async (t) => {
  const frame = Buffer.concat([encode('SET', 'k', 'v'), encode('GET', 'k'), encode('PING')])
  t.same(parseAll([frame]), [['SET', 'k', 'v'], ['GET', 'k'], ['PING']])
})

t.test('yields the same commands when a frame is split at every byte boundary', async (t) => {
  const binary = Buffer.from([0, 13, 10, 255, 36, 42])
  const frame = Buffer.concat([encode('SET', 'key', binary), encode('MGET', 'a', 'b'), Buffer.from('PING\r\n')])
  const expected = parseAll([frame])
  t.equal(expected.length, 3)
  for (let i = 1; i < frame.length; i++) {
    t.same(parseAll([frame.subarray(0, i), frame.subarray(i)]), expected, `split at ${i}`)
  }
  t.same(parseAll([...frame].map((byte) => Buffer.from([byte]))), expected, 'one byte at a time')
})

t.test('reads inline commands split on spaces, with or without CR', async (t) => {
  t.same(parseAll([Buffer.from('SET  k\tv\r\nGET k\n\r\n')]), [['SET', 'k', 'v'], ['GET', 'k']])
})

t.test('skips empty arrays as Redis does', async (t) => {
  t.same(parseAll([Buffer.from('*0\r\n*-1\r\n'), encode('PING')]), [['PING']])
})

t.test('refuses malformed frames with Redis-style messages', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['*x\r\n', /invalid multibulk length/],
    ['*1\r\n:5\r\n', /expected '\$', got ':'/],
    ['*1\r\n$abc\r\n', /invalid bulk length/],
    ['*1\r\n$-5\r\n', /invalid bulk length/],
    ['*1\r\n$3\r\nabcXY', /not terminated by CRLF/],
    ['*2\r', /$^/],
  ]
  for (const [input, message] of cases) {
    if (message.source === '$^') {
      t.same(parseAll([Buffer.from(input)]), [], `${JSON.stringify(input)} waits for more`)
      continue
    }
    t.throws(() => parseAll([Buffer.from(input)]), { constructor: RespProtocolError, message }, JSON.stringify(input))
  }
})

t.test('enforces its limits before buffering the data', async (t) => {
  const limits = { maxBulkBytes: 10, maxArrayLength: 3, maxInlineBytes: 16 }
  t.throws(() => parseAll([Buffer.from('*4\r\n')], limits), /invalid multibulk length/)
  t.throws(() => parseAll([Buffer.from('*1\r\n$11\r\n')], limits), /invalid bulk length/)
  t.throws(() => parseAll([Buffer.from('x'.repeat(17))], limits), /too big inline request/)
  t.throws(() => parseAll([Buffer.from(`*1${'1'.repeat(40)}`)], limits), /invalid multibulk length/, 'endless header line')
  t.same(parseAll([encode('SET', 'k', '0123456789')], limits), [['SET', 'k', '0123456789']])
})

t.test('random input never crashes or loops: commands or a protocol error', async (t) => {
  const limits = { maxBulkBytes: 64, maxArrayLength: 8, maxInlineBytes: 64 }
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 8 }), (chunks) => {
      try {
        parseAll(chunks.map((c) => Buffer.from(c)), limits)
      } catch (error) {
        if (!(error instanceof RespProtocolError)) throw error
      }
    }),
    { numRuns: 3000 },
  )
  t.pass('3000 random inputs handled')
})

t.test('random valid commands round-trip through any chunking', async (t) => {
  const argument = fc.uint8Array({ minLength: 1, maxLength: 30 }).map((bytes) => Buffer.from(bytes))
  fc.assert(
    fc.property(fc.array(fc.array(argument, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 6 }), (commands, cuts) => {
      const frame = Buffer.concat(commands.map((args) => encode(...args)))
      const points = [...new Set(cuts.map((c) => c % (frame.length + 1)))].sort((a, b) => a - b)
      const chunks: Buffer[] = []
      let from = 0
      for (const point of [...points, frame.length]) {
        chunks.push(frame.subarray(from, point))
        from = point
      }
      const parsed = parseAll(chunks)
      return JSON.stringify(parsed) === JSON.stringify(commands.map((args) => args.map((a) => a.toString('latin1'))))
    }),
    { numRuns: 1000 },
  )
  t.pass('1000 random pipelines parsed exactly')
})

// Feeds chunks to a parser whose handler stops after the commands stopAfter picks, resuming each
// time as a server does when its client's replies drain; returns the commands in the order handled.
/**
 * Parses chunks, stopping after the commands stopAfter names and resuming at once. inPlace: through
 * pushArgs/resumeArgs, reading each argument where it lies as the shard does, else push/resume.
 */
function parseWithStops(chunks: Buffer[], stopAfter: (index: number) => boolean, limits?: RespLimits, inPlace = false): string[][] {
  const parser = new RespRequestParser(limits)
  const commands: string[][] = []
  const onArray = (args: Buffer[]) => {
    commands.push(args.map((a) => a.toString('latin1')))
    return !stopAfter(commands.length - 1)
  }
  const onArgs = (args: RespArgs) => {
    const texts: string[] = []
    for (let i = 0; i < args.count; i++) texts.push(args.latin1(i))
    if (args.toArray().some((a, i) => a.toString('latin1') !== texts[i])) throw new Error('buffer views and latin1 disagree')
    return onArray(args.toArray())
  }
  for (const chunk of chunks) {
    let finished = inPlace ? parser.pushArgs(chunk, onArgs) : parser.push(chunk, onArray)
    while (!finished) finished = inPlace ? parser.resumeArgs(onArgs) : parser.resume(onArray)
  }
  return commands
}

t.test('a handler returning false stops between commands; resume goes on from there', async (t) => {
  const frame = Buffer.concat([encode('SET', 'k', 'v'), Buffer.from('PING\r\n'), encode('GET', 'k'), encode('MGET', 'a')])
  const parser = new RespRequestParser()
  const seen: string[] = []
  const stopAlways = (args: Buffer[]) => {
    seen.push(args[0].toString())
    return false
  }
  t.equal(parser.push(frame, stopAlways), false, 'push reports the stop')
  t.same(seen, ['SET'], 'nothing after the stop was handled')
  t.ok(parser.midRequest && parser.heldBytes > 0, 'the rest stays buffered')
  t.equal(parser.resume(stopAlways), false)
  t.equal(parser.resume(stopAlways), false)
  t.same(seen, ['SET', 'PING', 'GET'])
  t.equal(parser.resume(() => true), true, 'the last command, then nothing left')
  t.equal(parser.heldBytes, 0)
  t.equal(parser.midRequest, false)
  t.equal(parser.resume(stopAlways), true, 'resume with nothing buffered handles nothing')
})

t.test('stopping after every command, or some, yields the same commands at every split point', async (t) => {
  const binary = Buffer.from([0, 13, 10, 255, 36, 42])
  const frame = Buffer.concat([encode('SET', 'key', binary), Buffer.from('PING\r\n'), encode('MGET', 'a', 'b'), encode('GET', 'k')])
  const expected = parseAll([frame])
  t.equal(expected.length, 4)
  for (let i = 0; i <= frame.length; i++) {
    const chunks = [frame.subarray(0, i), frame.subarray(i)]
    t.same(parseWithStops(chunks, () => true), expected, `stop after each, split at ${i}`)
    t.same(parseWithStops(chunks, (index) => index % 2 === 1), expected, `stop after odd ones, split at ${i}`)
  }
  t.same(parseWithStops([...frame].map((byte) => Buffer.from([byte])), () => true), expected, 'one byte at a time')
})

t.test('random pipelines, chunkings and stops parse exactly', async (t) => {
  const argument = fc.uint8Array({ minLength: 1, maxLength: 20 }).map((bytes) => Buffer.from(bytes))
  fc.assert(
    fc.property(fc.array(fc.array(argument, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 6 }), fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }), (commands, cuts, stops) => {
      const frame = Buffer.concat(commands.map((args) => encode(...args)))
      const points = [...new Set(cuts.map((c) => c % (frame.length + 1)))].sort((a, b) => a - b)
      const chunks = [...points, frame.length].map((point, i, all) => frame.subarray(i === 0 ? 0 : all[i - 1], point))
      const parsed = parseWithStops(chunks, (index) => stops[index % stops.length])
      return JSON.stringify(parsed) === JSON.stringify(commands.map((args) => args.map((a) => a.toString('latin1'))))
    }),
    { numRuns: 1000 },
  )
  t.pass('1000 random pipelines with stops parsed exactly')
})

t.test('an unfinished request holding more than maxQueryBufferBytes is refused as it grows', async (t) => {
  const limits = { ...DEFAULT_RESP_LIMITS, maxBulkBytes: 100, maxQueryBufferBytes: 250 }
  const value = 'v'.repeat(100)
  const parser = new RespRequestParser(limits)
  const handled: string[][] = []
  const handler = (args: Buffer[]) => handled.push(args.map((a) => a.toString()))
  // An array of five 100-byte values: the arguments read so far count, not only the buffer.
  t.equal(parser.push(Buffer.from('*6\r\n$4\r\nMSET\r\n'), handler), true)
  t.equal(parser.push(encode(value).subarray(4), handler), true, 'one value: 104 bytes held')
  t.equal(parser.push(encode(value).subarray(4), handler), true, 'two values: 208 bytes held')
  t.equal(parser.heldBytes, 204)
  t.throws(() => parser.push(encode(value).subarray(4), handler), { constructor: RespQueryBufferError, message: /query buffer limit exceeded/ })
  t.same(handled, [], 'the refused request was never handled')
  const pipeline = Buffer.concat(Array.from({ length: 10 }, () => encode('SET', 'k', value)))
  t.equal(parseAll([pipeline], limits).length, 10, 'whole commands in one chunk, however many, are not held')
})

t.test('pushArgs and resumeArgs read the same commands as push, at every split point and with stops', async (t) => {
  const binary = Buffer.from([0, 13, 10, 255, 36, 42])
  const frame = Buffer.concat([encode('SET', 'key', binary), Buffer.from('PING\r\n'), encode('MGET', 'a', 'b'), encode('GET', 'k')])
  const expected = parseAll([frame])
  for (let i = 0; i <= frame.length; i++) {
    const chunks = [frame.subarray(0, i), frame.subarray(i)]
    t.same(parseWithStops(chunks, () => false, undefined, true), expected, `split at ${i}`)
    t.same(parseWithStops(chunks, (index) => index % 2 === 0, undefined, true), expected, `stop after even ones, split at ${i}`)
  }
  t.same(parseWithStops([...frame].map((byte) => Buffer.from([byte])), () => true, undefined, true), expected, 'one byte at a time, stopping after each')
})

t.test('RespArgs matches command names in any letter case, byte for byte', async (t) => {
  const parser = new RespRequestParser()
  const seen: boolean[][] = []
  parser.pushArgs(Buffer.concat([encode('sEt', 'SL.SYNC', 'sl\x0esync', 'Set!')]), (args) => {
    seen.push([args.is(0, 'set'), args.is(1, 'sl.sync'), args.is(2, 'sl.sync'), args.is(3, 'set'), args.is(0, 'get')])
    t.equal(args.byteLength(1), 7)
    t.equal(args.byteAt(1, 2), '.'.charCodeAt(0))
    const copy = Buffer.alloc(4)
    t.equal(args.copyTo(3, copy, 0), 4)
    t.equal(copy.toString('latin1'), 'Set!')
  })
  t.same(seen, [[true, true, false, false, false]], 'only letters fold; other bytes must match exactly')
})

t.test('arguments handed to a CommandHandler stay as they were after it returns and the parser goes on', async (t) => {
  const parser = new RespRequestParser()
  const kept: Buffer[][] = []
  const frame = Buffer.concat([encode('SET', 'k1', 'first'), encode('SET', 'k2', 'second')])
  // Split inside the second command, so its first arguments and the rest come from two reads.
  parser.push(frame.subarray(0, frame.length - 5), (args) => kept.push(args))
  parser.push(frame.subarray(frame.length - 5), (args) => kept.push(args))
  parser.push(encode('SET', 'k3', 'third'), (args) => kept.push(args))
  t.same(kept.map((args) => args.map((a) => a.toString())), [['SET', 'k1', 'first'], ['SET', 'k2', 'second'], ['SET', 'k3', 'third']])
})
