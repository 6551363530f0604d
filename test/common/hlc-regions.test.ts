// The hybrid logical clock with regions: every version it issues carries its region id in the low
// bits, stays monotonic, and moves past versions observed from other regions.
import t from 'tap'
import { HybridLogicalClock, LOGICAL_RANGE, REGION_SLOTS, regionOfVersion } from '../../common/hlc.ts'

t.test('every version a clock with region k issues is ≡ k mod 16, strictly increasing', async (t) => {
  let now = 1_700_000_000_000
  for (const region of [0, 1, 7, 15]) {
    const clock = new HybridLogicalClock(() => now, region)
    let last = 0
    for (let i = 0; i < 500; i++) {
      if (i % 100 === 0) now++
      const version = clock.next()
      if (regionOfVersion(version) !== region || version <= last) t.fail(`region ${region}: ${version} after ${last}`)
      last = version
    }
    t.ok(last < (now + 1) * LOGICAL_RANGE, `region ${region}: 100 versions a millisecond stay within the millisecond's logical range`)
  }
})

t.test('a version observed from another region is passed, in this clock\'s slot', async (t) => {
  const now = 1_700_000_000_000
  const east = new HybridLogicalClock(() => now, 3)
  const west = new HybridLogicalClock(() => now + 5, 9)
  const fromWest = west.next()
  east.observe(fromWest)
  const next = east.next()
  t.ok(next > fromWest, 'newer than what it saw')
  t.equal(regionOfVersion(next), 3)
  t.ok(next - fromWest < REGION_SLOTS, 'by less than one round of the slots')
  t.not(east.next(), west.next(), 'two regions never issue the same version')
})

t.test('without a region, versions step by one; a bad region id is refused', async (t) => {
  const clock = new HybridLogicalClock(() => 1000)
  t.equal(clock.next(), 1000 * LOGICAL_RANGE)
  t.equal(clock.next(), 1000 * LOGICAL_RANGE + 1)
  for (const bad of [-1, 16, 1.5, NaN]) t.throws(() => new HybridLogicalClock(Date.now, bad), RangeError, `region ${bad}`)
})
