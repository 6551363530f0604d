// Key hashing: a fast 32-bit hash over a key's bytes, shared by the hash ring and the sketches.
// Keys travel as latin1 strings (one char per byte), so hashing needs no encoding step.

// Hand-written because it sits on every request's path: the npm murmurhash packages encode
// strings with TextEncoder on each call, which costs more than the whole ring lookup budget.
// FNV-1a over the bytes, then murmur3's fmix32 finalizer for avalanche (FNV alone clusters
// keys that differ only in their last bytes, which skews a ring).
export function hashKey(key: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i) & 0xff
    h = Math.imul(h, 0x01000193)
  }
  return fmix32(h)
}

export function fmix32(input: number): number {
  let h = input
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
