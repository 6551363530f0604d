// Hot-key copies and sub-counters live under derived keys: no key a client can send is one of
// them, and no two (key, index) pairs share one (fast-check).
import t from 'tap'
import fc from 'fast-check'
import { HttpError } from '../../common/http-errors.ts'
import { keyFromPath } from '../../common/key-api.ts'
import { copyKey, subCounterKey } from '../../router/routes/hot-key-route.ts'

const acceptable = (text: string): string | null => {
  try {
    return keyFromPath(text, 250)
  } catch (error) {
    if (error instanceof HttpError) return null
    throw error
  }
}

t.test('no user key is a copy or sub-counter key, and derived keys never collide', async (t) => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ minLength: 1, maxLength: 40 }), fc.nat(63), fc.nat(63), (a, b, i, j) => {
      const keyA = acceptable(a)
      const keyB = acceptable(b)
      if (keyA === null || keyB === null) return true
      const derived = [copyKey(keyA, i), subCounterKey(keyA, i)]
      // What the router would accept from a client, in its byte form, is never a derived key.
      const asClientKey = derived.map((key) => acceptable(Buffer.from(key, 'latin1').toString('utf8')))
      if (asClientKey.some((key) => key !== null)) return false
      if (copyKey(keyA, i) === copyKey(keyB, j) && (keyA !== keyB || i !== j)) return false
      if (subCounterKey(keyA, i) === subCounterKey(keyB, j) && (keyA !== keyB || i !== j)) return false
      return copyKey(keyA, i) !== subCounterKey(keyB, j)
    }),
    { numRuns: 5000 },
  )
  t.pass('5000 random key pairs')
})
