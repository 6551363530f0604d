// Consistent hash ring over shard names: which shard owns a key, and the distinct shards after it
// (for hot-key copies). Names, not addresses, are hashed, so re-addressing a shard moves no key.
import { fmix32, hashKey } from './hash.ts'

/**
 * Points per node when the caller has no reason to choose. A node's share of the ring has a
 * relative spread of about 1/sqrt(points), so the busiest of 50 shards sits near 1 + 2.3/sqrt(points)
 * times the mean: 160 points (ketama) give about 1.18, 2000 about 1.055, 8000 about 1.025. 8000 is
 * the smallest count that kept the busiest of 50 shards under 1.05× the mean of 1M keys with margin
 * on every one of 30 name sets × 2 key sets (worst 1.042; 7000: 1.048, 6000: 1.066; run
 * `npx node bench/ring.ts --sweep`). It costs 6 bytes per point: 2.3 MiB at 50 shards.
 *
 * Laying a node's points out more evenly would not help: the other nodes' points are independent
 * of them, so the gap in front of each point is still about exponential. Only more points, or a
 * different lookup rule (multi-probe, rendezvous), shrink the spread.
 */
export const DEFAULT_POINTS_PER_NODE = 8000

/** 2^16: node indexes are stored as Uint16. */
const MAX_NODES = 0x10000

/** Seeds the second name hash, so two names must agree on 64 bits for their points to coincide. */
const POINT_SEED = 0x2545f491

/**
 * Point i of the node whose name hashes to outer and inner. Two fmix32 rounds over integers, not
 * hashKey(`${name}\u0000${i}`): that string form hashes points and keys like `key:${i}` through the
 * same FNV steps over decimal digits, and on some name sets a key family clustered on one node's
 * points (10 standard deviations on a tenth of the keys). It also builds no string per point.
 */
function pointHash(outer: number, inner: number, i: number): number {
  return fmix32(outer ^ fmix32((inner + Math.imul(i, 0x9e3779b9)) >>> 0))
}

/**
 * Each node has `pointsPerNode` points at pointHash(its name's two hashes, i); a key belongs to the
 * first point at or after hashKey(key), wrapping past 2^32 - 1 to the first point. Points are sorted by
 * (hash, name), so equal hashes are broken by name and every router builds the same ring from the
 * same names, in whatever order they are given. A node's points depend on its name alone, so adding
 * or removing a node moves only keys to or from that node.
 */
export class HashRing {
  readonly pointsPerNode: number
  /** The node names, sorted (code-unit order); node indexes in `owners` point into this. */
  private readonly names: readonly string[]
  /** Point hashes, ascending. */
  private readonly points: Uint32Array
  /** owners[i] is the index in `names` of the node that owns points[i]. */
  private readonly owners: Uint16Array
  /** lookupDistinct's "already taken" marks: seen[node] === epoch means taken in this call. */
  private readonly seen: Uint32Array
  private epoch = 0

  constructor(names: readonly string[], pointsPerNode: number = DEFAULT_POINTS_PER_NODE) {
    if (names.length === 0) throw new Error('HashRing needs at least one node name')
    if (names.length > MAX_NODES) throw new Error(`HashRing supports at most ${MAX_NODES} nodes, got ${names.length}`)
    if (!Number.isInteger(pointsPerNode) || pointsPerNode < 1) throw new Error(`HashRing pointsPerNode must be a positive integer, got ${pointsPerNode}`)
    for (const name of names) {
      if (typeof name !== 'string' || name.length === 0) throw new Error(`HashRing node names must be non-empty strings, got ${JSON.stringify(name)}`)
      // hashKey reads one byte per char; a wider char would alias another name's points.
      if (/[\u0100-\uffff]/.test(name)) throw new Error(`HashRing node name ${JSON.stringify(name)} is not a latin1 string`)
    }
    const sorted = [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i] === sorted[i - 1]) throw new Error(`HashRing got duplicate node name ${JSON.stringify(sorted[i])}`)
    }
    this.pointsPerNode = pointsPerNode
    this.names = Object.freeze(sorted)

    // hash * 2^16 + node index is exact in a double (< 2^48), so one numeric sort orders points
    // by hash and then by name.
    const total = sorted.length * pointsPerNode
    const packed = new Float64Array(total)
    let k = 0
    for (let node = 0; node < sorted.length; node++) {
      const outer = hashKey(sorted[node])
      const inner = hashKey(sorted[node], POINT_SEED)
      for (let i = 0; i < pointsPerNode; i++) packed[k++] = pointHash(outer, inner, i) * MAX_NODES + node
    }
    packed.sort()
    this.points = new Uint32Array(total)
    this.owners = new Uint16Array(total)
    for (let i = 0; i < total; i++) {
      const value = packed[i]
      const node = value % MAX_NODES
      this.owners[i] = node
      this.points[i] = (value - node) / MAX_NODES
    }
    this.seen = new Uint32Array(sorted.length)
  }

  /** The node names, sorted: the same array whatever order the constructor was given. */
  get nodes(): readonly string[] {
    return this.names
  }

  /**
   * Each node's exact share of the hash space (0..1, summing to 1): the fraction of all possible
   * key hashes it owns, free of the sampling noise of counting keys.
   */
  shares(): Map<string, number> {
    const { points, owners, names } = this
    const owned = new Float64Array(names.length)
    // Point i owns the hashes after the previous point up to and including its own.
    owned[owners[0]] += 2 ** 32 - points[points.length - 1] + points[0]
    for (let i = 1; i < points.length; i++) owned[owners[i]] += points[i] - points[i - 1]
    return new Map(names.map((name, node) => [name, owned[node] / 2 ** 32]))
  }

  /** The node that owns `key` (a latin1 string of the key's bytes). Allocates nothing. */
  lookup(key: string): string {
    return this.names[this.owners[this.firstPointAtOrAfter(hashKey(key))]]
  }

  /**
   * The first `count` distinct nodes met walking clockwise from the key's position; the first is
   * lookup(key). Returns every node (in ring order) when `count` is at least the node count.
   */
  lookupDistinct(key: string, count: number): string[] {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`lookupDistinct count must be a non-negative integer, got ${count}`)
    const want = Math.min(count, this.names.length)
    const result: string[] = []
    if (want === 0) return result
    if (this.epoch === 0xffffffff) {
      this.seen.fill(0)
      this.epoch = 0
    }
    const epoch = ++this.epoch
    const { points, owners, seen, names } = this
    // Every node has at least one point, so this finds `want` nodes within one turn.
    for (let i = this.firstPointAtOrAfter(hashKey(key)); result.length < want; i = i + 1 === points.length ? 0 : i + 1) {
      const node = owners[i]
      if (seen[node] !== epoch) {
        seen[node] = epoch
        result.push(names[node])
      }
    }
    return result
  }

  /** Index of the first point whose hash is >= h, or 0 (wrapping) when there is none. */
  private firstPointAtOrAfter(h: number): number {
    const points = this.points
    let lo = 0
    let hi = points.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (points[mid] < h) lo = mid + 1
      else hi = mid
    }
    return lo === points.length ? 0 : lo
  }
}
