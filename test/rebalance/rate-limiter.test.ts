// The rebalance job's --rate token bucket, on a clock the test moves: it holds the job to the
// rate over time, lets a page leave at once within a second's budget, and 0 means unlimited.
import t from 'tap'
import { MAX_RATE, RateLimiter, type Clock } from '../../rebalance/rate-limiter.ts'

function manualClock(): Clock & { slept: number[] } {
  let now = 0
  const slept: number[] = []
  return {
    slept,
    now: () => now,
    async sleep(ms) {
      slept.push(ms)
      now += ms
    },
  }
}

t.test('a rate of 0 never waits', async (t) => {
  const clock = manualClock()
  const limiter = new RateLimiter(0, clock)
  for (let i = 0; i < 100; i++) await limiter.take(1_000_000)
  t.same(clock.slept, [])
})

t.test('keys within the first second\'s budget leave at once; past it the job waits its share', async (t) => {
  const clock = manualClock()
  const limiter = new RateLimiter(1000, clock)
  await limiter.take(1000)
  t.same(clock.slept, [], 'a full second\'s worth at once')
  await limiter.take(500)
  t.same(clock.slept, [500], 'half a second for 500 more at 1000/s')
})

t.test('over many pages the rate holds, whatever the page size', async (t) => {
  for (const page of [1, 7, 1000, 5000]) {
    const clock = manualClock()
    const limiter = new RateLimiter(2000, clock)
    let keys = 0
    while (keys < 20_000) {
      await limiter.take(page)
      keys += page
    }
    // The first second's budget is spent at once, every key after it costs 1/2000 s.
    const expectedMs = ((keys - 2000) / 2000) * 1000
    t.ok(Math.abs(clock.now() - expectedMs) <= 1, `page ${page}: ${keys} keys took ${clock.now()} ms, expected ${expectedMs}`)
  }
})

t.test('an idle spell refills at most one second\'s budget', async (t) => {
  const clock = manualClock()
  const limiter = new RateLimiter(100, clock)
  await limiter.take(100)
  await clock.sleep(60_000)
  clock.slept.length = 0
  await limiter.take(100)
  t.same(clock.slept, [], 'a second\'s budget came back')
  await limiter.take(100)
  t.same(clock.slept, [1000], 'not a minute\'s')
})

t.test('the rate has a range', async (t) => {
  for (const bad of [-1, 1.5, MAX_RATE + 1, Number.NaN]) t.throws(() => new RateLimiter(bad), RangeError, String(bad))
  t.equal(new RateLimiter(MAX_RATE).keysPerSecond, MAX_RATE)
})
