// Hot-key detection: a decaying count-min sketch says how often each key was asked for lately,
// and a small top-K table remembers the heaviest keys (a sketch alone cannot list them).
import { CountMinSketch } from './count-min-sketch.ts'

export interface HotKeyDetectorOptions {
  /** A key is hot at or above this share of the traffic (0.005 = 0.5%). */
  share: number
  /** ...or at or above this many requests per second, when set. */
  rate?: number
  /** Below this rate no key is hot by share: at a trickle, nothing needs spreading. */
  minRate: number
  /** Counts are halved every decayMs, so a key that cools down stops being hot. */
  decayMs: number
  /** Heavy hitters kept for listing. */
  topK: number
  /** Sketch counters per row (4 rows of 2 bytes each). */
  width: number
}

export const DEFAULT_DETECTOR_OPTIONS: HotKeyDetectorOptions = { share: 0.005, minRate: 50, decayMs: 250, topK: 32, width: 8192 }

/**
 * With halving every decayMs, a key's count reaches about 94% of its steady share four periods
 * (one second at 250 ms) after it turns hot; flagging at 90% of the configured share is what
 * lets a key at exactly that share be flagged within a second.
 */
const SHARE_SLACK = 0.9

export interface HeavyHitter {
  key: string
  /** Estimated requests per second. */
  rate: number
  /** Estimated share of the detector's traffic. */
  share: number
  hot: boolean
}

export class HotKeyDetector {
  readonly options: HotKeyDetectorOptions
  private readonly sketch: CountMinSketch
  /** Decayed total of everything recorded, in the same units as the sketch's counts. */
  private total = 0
  private lastDecay: number
  /** Decayed counts at or above which minRate and rate are met. */
  private readonly minCount: number
  private readonly rateCount: number
  /** The heaviest keys and their counts as last seen (a holder object: one map lookup a request). */
  private readonly top = new Map<string, { count: number }>()
  private topMinimum = 0

  constructor(options: HotKeyDetectorOptions, now: number) {
    this.options = options
    this.sketch = new CountMinSketch({ width: options.width, depth: 4 })
    this.lastDecay = now
    this.minCount = Math.max(1, options.minRate * countPerRate(options.decayMs))
    this.rateCount = options.rate !== undefined ? Math.max(1, options.rate * countPerRate(options.decayMs)) : Infinity
  }

  /** Counts one request for key at time now (ms) and says whether the key is hot. */
  record(key: string, now: number): boolean {
    if (now - this.lastDecay >= this.options.decayMs) this.decay(now)
    this.total++
    const count = this.sketch.increment(key)
    const entry = this.top.get(key)
    if (entry !== undefined) {
      const previous = entry.count
      entry.count = count
      if (previous <= this.topMinimum && this.top.size >= this.options.topK) this.topMinimum = this.minimumOfTop()
    } else if (count > this.topMinimum) {
      this.admit(key, count)
    }
    return this.isHotCount(count)
  }

  /** Whether key is hot now, without counting a request. */
  isHot(key: string): boolean {
    return this.isHotCount(this.sketch.estimate(key))
  }

  private isHotCount(count: number): boolean {
    return (count >= this.minCount && count >= this.options.share * SHARE_SLACK * this.total) || count >= this.rateCount
  }

  /** The heaviest keys seen lately, heaviest first, with rates estimated as of now (ms). */
  heavyHitters(now: number): HeavyHitter[] {
    // In the steady state a count is rate × decayMs just after a halving and grows with the
    // time since: rate × (decayMs + elapsed).
    const perRate = (this.options.decayMs + Math.min(now - this.lastDecay, this.options.decayMs)) / 1000
    return [...this.top.keys()]
      .map((key) => {
        const count = this.sketch.estimate(key)
        return { key, rate: count / perRate, share: this.total > 0 ? count / this.total : 0, hot: this.isHotCount(count) }
      })
      .sort((a, b) => b.rate - a.rate)
  }

  // Space-Saving-style table of the heaviest keys: a newcomer heavier than the lightest entry
  // takes its place. The minimum is recomputed only when it may have changed.
  private admit(key: string, count: number): void {
    this.top.set(key, { count })
    if (this.top.size > this.options.topK) {
      let minimumKey = key
      let minimum = Infinity
      for (const [candidate, entry] of this.top) {
        if (entry.count < minimum) {
          minimum = entry.count
          minimumKey = candidate
        }
      }
      this.top.delete(minimumKey)
    }
    if (this.top.size >= this.options.topK) this.topMinimum = this.minimumOfTop()
  }

  private minimumOfTop(): number {
    let minimum = Infinity
    for (const entry of this.top.values()) if (entry.count < minimum) minimum = entry.count
    return minimum
  }

  private decay(now: number): void {
    const periods = Math.floor((now - this.lastDecay) / this.options.decayMs)
    this.lastDecay += periods * this.options.decayMs
    for (let i = 0; i < Math.min(periods, 16); i++) this.sketch.halve()
    const factor = 2 ** -Math.min(periods, 16)
    this.total *= factor
    for (const entry of this.top.values()) entry.count *= factor
    this.topMinimum *= factor
  }
}

/**
 * The decayed count of a key asked for once a second: with halving every decayMs it swings
 * between 1 and 2 × decayMs/1000 over a period, 1.5 × on average.
 */
function countPerRate(decayMs: number): number {
  return (1.5 * decayMs) / 1000
}
