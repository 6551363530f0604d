// Count-min sketch with conservative update and halving decay: approximate per-key counts in
// fixed memory. Used by the shard's LFU admission and the router's hot-key detection.
import { fmix32, hashKey } from './hash.ts'

export interface CountMinSketchOptions {
  /** Counters per row; rounded up to a power of two. */
  width: number
  /** Rows (independent hash functions). */
  depth?: number
  /** After this many increments every counter is halved, so old popularity fades. 0 = never. */
  decayAfter?: number
}

const MAX_COUNT = 0xffff

export class CountMinSketch {
  readonly width: number
  readonly depth: number
  readonly decayAfter: number
  private readonly counters: Uint16Array
  private readonly mask: number
  private readonly slots: Int32Array
  private incrementsSinceDecay = 0

  constructor(options: CountMinSketchOptions) {
    this.width = 2 ** Math.ceil(Math.log2(Math.max(16, options.width)))
    this.depth = options.depth ?? 4
    this.decayAfter = options.decayAfter ?? 0
    this.mask = this.width - 1
    this.counters = new Uint16Array(this.width * this.depth)
    this.slots = new Int32Array(this.depth)
  }

  /** Adds one occurrence of key and returns its new estimate. */
  increment(key: string): number {
    const minimum = this.locate(key)
    // Conservative update: only counters at the minimum grow, which cuts overestimation.
    if (minimum < MAX_COUNT) {
      for (let row = 0; row < this.depth; row++) {
        const slot = this.slots[row]
        if (this.counters[slot] === minimum) this.counters[slot] = minimum + 1
      }
    }
    if (this.decayAfter > 0 && ++this.incrementsSinceDecay >= this.decayAfter) this.halve()
    return Math.min(minimum + 1, MAX_COUNT)
  }

  estimate(key: string): number {
    return this.locate(key)
  }

  /** Halves every counter: the aging step of TinyLFU and of the hot-key detector. */
  halve(): void {
    for (let i = 0; i < this.counters.length; i++) this.counters[i] >>>= 1
    this.incrementsSinceDecay = 0
  }

  clear(): void {
    this.counters.fill(0)
    this.incrementsSinceDecay = 0
  }

  // Fills this.slots with the key's counter index in each row and returns the minimum count.
  // Rows use double hashing (h1 + row * h2), which keeps one pass over the key's bytes.
  private locate(key: string): number {
    const h1 = hashKey(key)
    const h2 = fmix32(h1 ^ 0x9e3779b9) | 1
    let minimum = MAX_COUNT
    for (let row = 0; row < this.depth; row++) {
      const slot = row * this.width + ((h1 + Math.imul(row, h2)) & this.mask)
      this.slots[row] = slot
      const count = this.counters[slot]
      if (count < minimum) minimum = count
    }
    return minimum
  }
}
