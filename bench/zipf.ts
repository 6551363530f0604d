// Seeded random numbers and Zipf request streams for benchmarks: a CDF over ranks, sampled by
// binary search, with ranks mapped through a shuffle so popularity is not ordered by key.

/** sfc32 seeded through splitmix32: small, fast, and good enough for sampling. */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0
  const splitmix = () => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
  let a = splitmix()
  let b = splitmix()
  let c = splitmix()
  let d = splitmix()
  const next32 = () => {
    const t = (((a + b) >>> 0) + d) >>> 0
    d = (d + 1) >>> 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) >>> 0
    c = ((c << 21) | (c >>> 11)) >>> 0
    c = (c + t) >>> 0
    return t
  }
  for (let i = 0; i < 16; i++) next32()
  // 53 random bits: the rarest ranks of a 1M-key Zipf 1.2 have probabilities near 1e-8.
  return () => ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992
}

/** Cumulative probabilities of ranks 1..n under Zipf(s). */
export function zipfCdf(n: number, s: number): Float64Array {
  const cdf = new Float64Array(n)
  let sum = 0
  for (let rank = 1; rank <= n; rank++) {
    sum += 1 / Math.pow(rank, s)
    cdf[rank - 1] = sum
  }
  for (let i = 0; i < n; i++) cdf[i] /= sum
  cdf[n - 1] = 1
  return cdf
}

/** Key indices of a request stream: Zipf ranks by binary search over the CDF, mapped through a shuffle. */
export function requestStream(cdf: Float64Array, rankToKey: Int32Array, length: number, random: () => number): Int32Array {
  const stream = new Int32Array(length)
  const n = cdf.length
  for (let i = 0; i < length; i++) {
    const u = random()
    let low = 0
    let high = n - 1
    while (low < high) {
      const mid = (low + high) >>> 1
      if (cdf[mid] > u) high = mid
      else low = mid + 1
    }
    stream[i] = rankToKey[low]
  }
  return stream
}

export function shuffledRanks(n: number, random: () => number): Int32Array {
  const map = new Int32Array(n)
  for (let i = 0; i < n; i++) map[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = map[i]
    map[i] = map[j]
    map[j] = t
  }
  return map
}
