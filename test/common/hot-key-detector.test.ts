// The hot-key detector on synthetic streams with a virtual clock: a key with 0.5% of the traffic
// is flagged within a second, the others are not, a key that cools down stops being hot, and
// the top-K list names the heavy hitters.
import t from 'tap'
import { DEFAULT_DETECTOR_OPTIONS, HotKeyDetector } from '../../common/hot-key-detector.ts'

/** Feeds `perSecond` requests a second for `seconds`, one in `1/share` going to hot. */
function feed(detector: HotKeyDetector, from: number, seconds: number, perSecond: number, pick: (i: number) => string): { flaggedAt: Map<string, number>; end: number } {
  const flaggedAt = new Map<string, number>()
  const total = seconds * perSecond
  for (let i = 0; i < total; i++) {
    const now = from + (i * 1000) / perSecond
    const key = pick(i)
    if (detector.record(key, now) && !flaggedAt.has(key)) flaggedAt.set(key, now)
  }
  return { flaggedAt, end: from + seconds * 1000 }
}

t.test('a key at 0.5% of the traffic is flagged within 1 s; uniform keys are not', async (t) => {
  const detector = new HotKeyDetector(DEFAULT_DETECTOR_OPTIONS, 0)
  // 20k req/s over 100k cold keys for 2 s, then key "hot" takes 0.5% of it.
  const warm = feed(detector, 0, 2, 20_000, (i) => `cold:${(i * 7919) % 100_000}`)
  t.equal(warm.flaggedAt.size, 0, 'no cold key is hot')
  const burst = feed(detector, warm.end, 2, 20_000, (i) => (i % 200 === 0 ? 'hot' : `cold:${(i * 7919) % 100_000}`))
  const delay = burst.flaggedAt.get('hot')! - warm.end
  t.ok(delay <= 1000, `flagged after ${delay} ms`)
  t.same([...burst.flaggedAt.keys()], ['hot'], 'nothing else is flagged')
  const top = detector.heavyHitters(burst.end)
  t.equal(top[0].key, 'hot')
  t.ok(top[0].hot)
  t.ok(Math.abs(top[0].rate - 100) < 30, `estimated ${top[0].rate.toFixed(0)} req/s for a true 100`)
})

t.test('a hot key cools down once its traffic stops', async (t) => {
  const detector = new HotKeyDetector(DEFAULT_DETECTOR_OPTIONS, 0)
  const hot = feed(detector, 0, 2, 10_000, (i) => (i % 10 === 0 ? 'hot' : `k${i % 5000}`))
  t.ok(detector.isHot('hot'))
  feed(detector, hot.end, 3, 10_000, (i) => `k${i % 5000}`)
  t.notOk(detector.isHot('hot'), 'not hot three seconds later')
})

t.test('below minRate nothing is hot, whatever its share; a rate threshold flags on its own', async (t) => {
  const quiet = new HotKeyDetector(DEFAULT_DETECTOR_OPTIONS, 0)
  const trickle = feed(quiet, 0, 3, 40, (i) => (i % 2 === 0 ? 'half' : `k${i}`))
  t.equal(trickle.flaggedAt.size, 0, '20 req/s is below the 50 req/s floor')
  const byRate = new HotKeyDetector({ ...DEFAULT_DETECTOR_OPTIONS, share: 0.5, rate: 200 }, 0)
  const fed = feed(byRate, 0, 2, 20_000, (i) => (i % 50 === 0 ? 'busy' : `k${i % 10_000}`))
  t.ok(fed.flaggedAt.has('busy'), '400 req/s passes a 200 req/s rate though its 2% share is below 50%')
})

t.test('recall and false positives on a Zipf-like stream', async (t) => {
  const detector = new HotKeyDetector(DEFAULT_DETECTOR_OPTIONS, 0)
  // 20 keys well above 0.5% (1%..3%), the rest of the traffic spread thin over 200k keys.
  const hot = Array.from({ length: 20 }, (_, i) => ({ key: `hot:${i}`, share: 0.01 + i * 0.001 }))
  const weights: Array<[string, number]> = hot.map((h) => [h.key, h.share])
  let acc = 0
  const cumulative = weights.map(([key, w]) => [key, (acc += w)] as const)
  let seed = 42
  const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32)
  const { flaggedAt } = feed(detector, 0, 3, 20_000, () => {
    const r = random()
    const found = cumulative.find(([, c]) => r < c)
    return found ? found[0] : `cold:${Math.floor(random() * 200_000)}`
  })
  const recalled = hot.filter((h) => flaggedAt.has(h.key)).length
  const falsePositives = [...flaggedAt.keys()].filter((k) => !k.startsWith('hot:')).length
  t.equal(recalled, 20, 'every hot key is flagged')
  t.equal(falsePositives, 0, 'no cold key is flagged')
})
