// HashRing at 50 shards for 160 points per node (ketama), the default, and twice the default: balance
// over 1M keys, keys moved by adding/removing a shard, lookup ns. --sweep: balance over 30 name sets.
import { DEFAULT_POINTS_PER_NODE, HashRing } from '../common/ring.ts'
import { codeVersion, formatTable, median } from './lib.ts'
import { createRandom } from './zipf.ts'

const SHARDS = 50
const KEYS = 1_000_000
const POINT_COUNTS = [160, DEFAULT_POINTS_PER_NODE, 2 * DEFAULT_POINTS_PER_NODE]
/** --sweep: the point counts whose worst balance over many name sets picked the default. */
const SWEEP_POINT_COUNTS = [2000, 4000, 5000, 6000, 7000, 8000, 10000]
const SWEEP_RANDOM_NAME_SETS = 26
const TIMING_ROUNDS = 15
/** Keys per timing round: short rounds, so a median over many skips the machine's busy moments. */
const TIMING_KEYS = 200_000
const NAMES = Array.from({ length: SHARDS }, (_, i) => `shard-${i}`)
const ADDED = `shard-${SHARDS}`
const REMOVED = 'shard-0'

/** Random latin1 keys of 8 to 40 bytes. */
function randomKeys(count: number, seed: number): string[] {
  const random = createRandom(seed)
  const keys: string[] = new Array(count)
  for (let i = 0; i < count; i++) {
    const length = 8 + Math.floor(random() * 33)
    let key = ''
    for (let j = 0; j < length; j++) key += String.fromCharCode(Math.floor(random() * 256))
    keys[i] = key
  }
  return keys
}

function owners(ring: HashRing, keys: readonly string[]): string[] {
  const result: string[] = new Array(keys.length)
  for (let i = 0; i < keys.length; i++) result[i] = ring.lookup(keys[i])
  return result
}

function maxOverMean(owned: readonly string[]): number {
  const counts = new Map<string, number>()
  for (const owner of owned) counts.set(owner, (counts.get(owner) ?? 0) + 1)
  return Math.max(...counts.values()) / (owned.length / SHARDS)
}

/** The busiest node's key count over the mean, counting without keeping the owners. */
function keyBalance(ring: HashRing, keys: readonly string[]): number {
  const index = new Map(ring.nodes.map((name, i) => [name, i]))
  const counts = new Uint32Array(ring.nodes.length)
  for (let i = 0; i < keys.length; i++) counts[index.get(ring.lookup(keys[i]))!]++
  return Math.max(...counts) / (keys.length / ring.nodes.length)
}

/** Fraction of keys whose owner changed, and how many changed to/from a node other than `node`. */
function moved(before: readonly string[], after: readonly string[], node: string): { fraction: number; stray: number } {
  let count = 0
  let stray = 0
  for (let i = 0; i < before.length; i++) {
    if (before[i] === after[i]) continue
    count++
    if (before[i] !== node && after[i] !== node) stray++
  }
  return { fraction: count / before.length, stray }
}

/** Median over rounds of the ns per lookup (hashing the key included). */
function lookupNs(ring: HashRing, keys: readonly string[]): number {
  const perRound: number[] = []
  let sink = 0
  for (let round = 0; round < TIMING_ROUNDS; round++) {
    const from = (round * TIMING_KEYS) % (keys.length - TIMING_KEYS + 1)
    const start = process.hrtime.bigint()
    for (let i = from; i < from + TIMING_KEYS; i++) sink += ring.lookup(keys[i]).length
    perRound.push(Number(process.hrtime.bigint() - start) / TIMING_KEYS)
  }
  if (sink === 0) throw new Error('unreachable: lookups returned nothing')
  return median(perRound)
}

function table(sequentialKeys: readonly string[], randomKeyList: readonly string[]): void {
  console.log(`${SHARDS} shards named shard-0..shard-${SHARDS - 1}; ${KEYS} keys key:0..key:${KEYS - 1} and ${KEYS} random 8-40 byte keys; ` +
    `add ${ADDED}, remove ${REMOVED}; lookup ns = median of ${TIMING_ROUNDS} rounds of ${TIMING_KEYS} key:i lookups\n`)
  const rows: Array<Array<string | number>> = []
  for (const points of POINT_COUNTS) {
    const buildStart = process.hrtime.bigint()
    const ring = new HashRing(NAMES, points)
    const buildMs = Number(process.hrtime.bigint() - buildStart) / 1e6
    const grown = new HashRing([...NAMES, ADDED], points)
    const shrunk = new HashRing(NAMES.filter((name) => name !== REMOVED), points)

    const base = owners(ring, sequentialKeys)
    const added = moved(base, owners(grown, sequentialKeys), ADDED)
    const removed = moved(base, owners(shrunk, sequentialKeys), REMOVED)
    const ns = lookupNs(ring, sequentialKeys)
    const stray = added.stray + removed.stray
    rows.push([
      points === DEFAULT_POINTS_PER_NODE ? `${points} (default)` : String(points),
      maxOverMean(base).toFixed(3),
      keyBalance(ring, randomKeyList).toFixed(3),
      (Math.max(...ring.shares().values()) * SHARDS).toFixed(3),
      (added.fraction * (SHARDS + 1)).toFixed(3),
      (removed.fraction * SHARDS).toFixed(3),
      stray === 0 ? 'none' : String(stray),
      ns.toFixed(0),
      buildMs.toFixed(0),
      ((ring.nodes.length * points * 6) / 2 ** 20).toFixed(2),
    ])
  }
  console.log(formatTable(
    ['points/node', 'max/mean key:i', 'max/mean random', 'max/mean exact', 'moved add ÷ 1/51', 'moved remove ÷ 1/50', 'moved elsewhere', 'ns/lookup', 'build ms', 'MB'],
    rows,
  ))
  console.log('\ntargets: max/mean <= 1.05; moved <= 1.1x ideal and none elsewhere; <= 1000 ns/lookup')
  console.log('(exact = the busiest shard\'s share of the hash space, no key sampling; removing a shard moves exactly')
  console.log(' its share, so the worst removal is the busiest shard: the max/mean columns)')
}

/** Worst and median busiest-shard ratio over many 50-name sets, for each key set. */
function sweep(sequentialKeys: readonly string[], randomKeyList: readonly string[]): void {
  const random = createRandom(2)
  const nameSets: Array<readonly string[]> = [
    NAMES,
    Array.from({ length: SHARDS }, (_, i) => `s${String(i).padStart(2, '0')}`),
    Array.from({ length: SHARDS }, (_, i) => `cache-${String(i + 1).padStart(2, '0')}.prod`),
    Array.from({ length: SHARDS }, (_, i) => String.fromCharCode(65 + (i % 26)) + (i >= 26 ? 'x' : '')),
    ...Array.from({ length: SWEEP_RANDOM_NAME_SETS }, () =>
      Array.from({ length: SHARDS }, (_, i) => `n${Math.floor(random() * 2 ** 32).toString(36)}-${i}`)),
  ]
  console.log(`${nameSets.length} sets of ${SHARDS} names (shard-i, s00, cache-01.prod, A..Z/Ax..Xx, ${SWEEP_RANDOM_NAME_SETS} random); ` +
    `busiest shard / mean over ${KEYS} key:i keys and ${KEYS} random keys (takes 2-3 minutes)\n`)
  const rows: Array<Array<string | number>> = []
  for (const points of SWEEP_POINT_COUNTS) {
    const ratios: number[] = []
    const exact: number[] = []
    for (const names of nameSets) {
      const ring = new HashRing(names, points)
      ratios.push(keyBalance(ring, sequentialKeys), keyBalance(ring, randomKeyList))
      exact.push(Math.max(...ring.shares().values()) * SHARDS)
    }
    rows.push([
      points,
      median(ratios).toFixed(3),
      Math.max(...ratios).toFixed(3),
      ratios.filter((ratio) => ratio > 1.05).length,
      ratios.filter((ratio) => ratio > 1.04).length,
      median(exact).toFixed(3),
      Math.max(...exact).toFixed(3),
    ])
  }
  console.log(formatTable(['points/node', 'median', 'worst', 'runs > 1.05', 'runs > 1.04', 'exact median', 'exact worst'], rows))
  console.log(`(${nameSets.length * 2} runs per row: every name set with each key set; exact = share of the hash space, no keys)`)
}

function main(): void {
  const started = Date.now()
  const sequentialKeys = Array.from({ length: KEYS }, (_, i) => `key:${i}`)
  const randomKeyList = randomKeys(KEYS, 1)
  console.log(`code: ${codeVersion()}`)
  if (process.argv.includes('--sweep')) sweep(sequentialKeys, randomKeyList)
  else table(sequentialKeys, randomKeyList)
  console.log(`total time ${((Date.now() - started) / 1000).toFixed(0)} s`)
}

main()
