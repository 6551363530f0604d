// The count-min sketch never underestimates, stays close on a skewed stream, saturates instead
// of wrapping, and forgets with decay.
import t from 'tap'
import { CountMinSketch } from '../../common/count-min-sketch.ts'

t.test('estimates are never below the true count and close for heavy keys', async (t) => {
  const sketch = new CountMinSketch({ width: 4096 })
  const truth = new Map<string, number>()
  let seed = 7
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32)
  for (let i = 0; i < 50_000; i++) {
    const key = `k${Math.floor(1 / (random() + 0.0005))}`
    truth.set(key, (truth.get(key) ?? 0) + 1)
    sketch.increment(key)
  }
  let under = 0
  for (const [key, count] of truth) if (sketch.estimate(key) < count) under++
  t.equal(under, 0, 'no key is underestimated')
  const heaviest = [...truth.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10)
  for (const [key, count] of heaviest) t.ok(sketch.estimate(key) <= count * 1.05 + 5, `${key}: ${sketch.estimate(key)} vs ${count}`)
})

t.test('counters saturate at their maximum instead of wrapping', async (t) => {
  const sketch = new CountMinSketch({ width: 16 })
  for (let i = 0; i < 70_000; i++) sketch.increment('k')
  t.equal(sketch.estimate('k'), 0xffff)
})

t.test('decay halves every count after the configured number of increments', async (t) => {
  const sketch = new CountMinSketch({ width: 1024, decayAfter: 100 })
  for (let i = 0; i < 99; i++) sketch.increment('k')
  t.equal(sketch.estimate('k'), 99)
  sketch.increment('k')
  t.equal(sketch.estimate('k'), 50, 'halved on the 100th increment')
  sketch.clear()
  t.equal(sketch.estimate('k'), 0)
})
