// The hot-counter batcher: increments within a window leave as one exact (bigint) sum, a sum that
// would leave the signed 64-bit range starts a new batch, and a failed batch fails all its waiters.
import t from 'tap'
import { INT64_MAX, INT64_MIN } from '../../common/limits.ts'
import { CounterBatcher } from '../../router/counter-batcher.ts'

function recordingBatcher(fail?: Error) {
  const applied: Array<[string, bigint]> = []
  const sizes: number[] = []
  const batcher = new CounterBatcher({
    windowMs: 10,
    apply: async (key, delta) => {
      applied.push([key, delta])
      if (fail) throw fail
    },
    onBatch: (size) => sizes.push(size),
  })
  return { batcher, applied, sizes }
}

t.test('increments past 2^53 sum exactly into one INCRBY per counter and window', async (t) => {
  const { batcher, applied, sizes } = recordingBatcher()
  const big = 2n ** 53n - 1n
  await Promise.all([batcher.add('a', big), batcher.add('a', big), batcher.add('a', 1n), batcher.add('b', -5n)])
  t.same(applied, [['a', 2n * big + 1n], ['b', -5n]])
  t.same(sizes, [3, 1])
})

t.test('a sum that would leave the signed 64-bit range leaves in separate batches, each a valid INCRBY', async (t) => {
  const { batcher, applied } = recordingBatcher()
  await Promise.all([batcher.add('c', INT64_MAX), batcher.add('c', 1n), batcher.add('c', INT64_MIN), batcher.add('c', -2n)])
  t.same(applied, [['c', INT64_MAX], ['c', 1n + INT64_MIN], ['c', -2n]])
})

t.test('a failed batch fails every waiter with its error and is applied once', async (t) => {
  const failure = Object.assign(new Error('lost'), { code: 'outcome_unknown' })
  const { batcher, applied } = recordingBatcher(failure)
  const results = await Promise.allSettled([batcher.add('d', 1n), batcher.add('d', 2n)])
  t.same(results.map((r) => r.status === 'rejected' && r.reason), [failure, failure])
  t.same(applied, [['d', 3n]])
})
