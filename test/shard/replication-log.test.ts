// The replication log's promises: offsets count every op, the backlog keeps the newest ops within
// its byte bound, a peer resumes only from inside it, and lag is told in ops, bytes and seconds.
import t from 'tap'
import { NOT_IN_BACKLOG, ReplicationLog } from '../../shard/replication-log.ts'

const op = (text: string) => Buffer.from(text)

function clockedLog(maxBytes: number) {
  const clock = { now: 1_000_000 }
  return { log: new ReplicationLog(maxBytes, () => clock.now), clock }
}

t.test('offsets number the ops, and a peer resumes from any offset still in the backlog', async (t) => {
  const { log } = clockedLog(1024)
  let appended = 0
  log.onAppend = () => appended++
  for (const text of ['a', 'bb', 'ccc']) log.append(op(text))
  t.equal(appended, 3)
  t.equal(log.headOffset, 3)
  t.same(log.readFrom(1), [op('bb'), op('ccc')])
  t.same(log.readFrom(3), [], 'a peer that has everything gets nothing')
  t.equal(log.readFrom(4), NOT_IN_BACKLOG, 'an offset from the future is not a resume point')
  t.match(log.replid, /^[0-9a-f]{40}$/)
  t.not(new ReplicationLog(1).replid, log.replid, 'each log has its own id')
})

t.test('the backlog keeps the newest ops within its byte bound', async (t) => {
  const { log } = clockedLog(10)
  for (let i = 0; i < 10; i++) log.append(op('xxxx'))
  t.equal(log.bytes, 8, 'two 4-byte ops fit in 10 bytes')
  t.equal(log.firstOffset, 8)
  t.equal(log.readFrom(7), NOT_IN_BACKLOG, 'a peer that needs a dropped op must take a full sync')
  t.same(log.readFrom(8), [op('xxxx'), op('xxxx')])
  log.append(op('y'.repeat(50)))
  t.equal(log.firstOffset, 10, 'an op larger than the backlog still stays, alone')
  t.equal(log.bytes, 50)
})

t.test('long runs compact without changing what offsets mean', async (t) => {
  const { log } = clockedLog(100)
  for (let i = 0; i < 20_000; i++) log.append(op(String(i % 10)))
  t.equal(log.firstOffset, 19_900)
  t.same(log.readFrom(19_998), [op('8'), op('9')])
})

t.test('lag behind an acknowledged offset, in ops, bytes and the age of the oldest unacknowledged op', async (t) => {
  const { log, clock } = clockedLog(1000)
  log.append(op('aaaa'))
  clock.now += 40
  log.append(op('bb'))
  clock.now += 10
  t.same(log.lagBehind(2), { ops: 0, bytes: 0, seconds: 0 })
  t.same(log.lagBehind(1), { ops: 1, bytes: 2, seconds: 0.01 })
  t.same(log.lagBehind(0), { ops: 2, bytes: 6, seconds: 0.05 })
  const small = clockedLog(4)
  for (const text of ['aaaa', 'bbbb', 'cccc']) small.log.append(op(text))
  t.same(small.log.lagBehind(0), { ops: 3, bytes: 4, seconds: 0 }, 'ops that left the backlog count, their bytes are gone')
})
