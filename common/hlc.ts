// Hybrid logical clock versions: wall-clock milliseconds times 2048 plus a logical counter,
// so versions order like time yet stay unique and monotonic per clock, and fit in a double.

export const LOGICAL_RANGE = 2048
/**
 * With regions, a version's low 4 bits are its region's id (0-15): two regions' clocks never issue
 * the same version, so concurrent writes to one key in two regions are ordered the same way
 * everywhere (the region is the tie-break), and apply-if-newer converges.
 */
export const REGION_SLOTS = 16

/** The region id a version was issued under (meaningful only when every clock has a region). */
export function regionOfVersion(version: number): number {
  return version % REGION_SLOTS
}

export class HybridLogicalClock {
  private last = 0
  private readonly now: () => number
  private readonly region: number | null

  /** region: this clock's region id (0-15), or null for a cluster without regions (versions step by one). */
  constructor(now: () => number = Date.now, region: number | null = null) {
    if (region !== null && (!Number.isInteger(region) || region < 0 || region >= REGION_SLOTS)) throw new RangeError(`a region id is an integer from 0 to ${REGION_SLOTS - 1}, not ${region}`)
    this.now = now
    this.region = region
  }

  /** A version newer than every one this clock issued or observed (in this clock's region slot). */
  next(): number {
    const floor = Math.max(this.last + 1, Math.floor(this.now()) * LOGICAL_RANGE)
    this.last = this.region === null ? floor : floor + ((this.region - (floor % REGION_SLOTS) + REGION_SLOTS) % REGION_SLOTS)
    return this.last
  }

  /** Moves the clock past a version seen from elsewhere (a replica applying a primary's write). */
  observe(version: number): void {
    if (version > this.last) this.last = version
  }
}
