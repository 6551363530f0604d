// Capacity planning (pure math, no I/O): from data size, request rate, entry size, replicas and node
// figures, the shards, pods and nodes a deployment needs, each shard's memory budget and pod memory.

export const MiB = 2 ** 20
export const GiB = 2 ** 30
export const TiB = 2 ** 40

/**
 * A shard's RSS beyond its budget (README "Memory"): test/shard/memory-budget.test.ts asserts
 * RSS <= maxMemory + 160 MB with ten times the budget written. The pod's memory request.
 */
export const SHARD_BASE_MIB = 160
/** V8's old-space limit is 1.1 x maxMemory + 128 MB (cli/shard-command.ts heapLimitMb). */
export const SHARD_HEAP_SLACK_MIB = 128
/** Bytes each entry is charged beyond its key and value (README "Store": 18 header + 152 slot). */
export const ENTRY_OVERHEAD_BYTES = 170
/** The busiest shard's share of keys over the mean, 50 shards at 8000 points (bench/ring.ts). */
export const RING_IMBALANCE = 1.05
/**
 * Requests per second one node serves when nothing better is given: the seed's figure (20k).
 * bench/RESULTS.md has no per-node router or shard throughput yet; replace this once it does.
 */
export const DEFAULT_NODE_THROUGHPUT = 20_000
export const DEFAULT_ROUTER_THROUGHPUT = 20_000
export const MIN_ROUTERS = 2

/** The pod memory request for a shard: its budget plus the measured base (MiB). */
export function shardMemoryRequestMiB(maxMemoryMiB: number): number {
  return maxMemoryMiB + SHARD_BASE_MIB
}

/**
 * The pod memory limit for a shard (MiB): V8's whole old space (1.1 x budget + 128 MB, plus 1 MiB
 * for rounding) and the base on top. A shard that keeps its budget never reaches it; V8 aborts a
 * runaway heap before the kernel's OOM killer would. Integer math, the same as the chart's helper.
 */
export function shardMemoryLimitMiB(maxMemoryMiB: number): number {
  return Math.floor((maxMemoryMiB * 11) / 10) + 1 + SHARD_HEAP_SLACK_MIB + SHARD_BASE_MIB
}

export interface PlanInput {
  /** Bytes the application stores (keys and values). */
  dataBytes: number
  requestsPerSecond: number
  /** Average value and key sizes: they set how many entries there are, and so the overhead. */
  valueBytes: number
  keyBytes: number
  /** Replicas per shard (copies = 1 + replicas). */
  replicas: number
  nodeMemoryBytes: number
  /** Memory per node the cache may fill: the shards' budgets on a node add up to this. */
  usableMemoryBytes: number
  /** Requests per second one node serves. */
  nodeThroughput: number
  shardsPerNode: number
  routerThroughput: number
}

export type Bound = 'storage' | 'throughput'

export interface Plan {
  input: PlanInput
  /** The seed's arithmetic: raw data over usable memory, raw rate over per-node throughput. */
  seed: { storageNodes: number; throughputNodes: number; bound: Bound; nodes: number; withReplicas: number }
  entry: { bytes: number; chargedBytes: number; overheadFactor: number; items: number }
  copies: number
  /** Each shard's budget (maxMemory), in MiB. */
  maxMemoryMiB: number
  storageShards: number
  throughputShards: number
  bound: Bound
  shards: number
  pods: number
  nodes: number
  memoryRequestMiB: number
  memoryLimitMiB: number
  routers: number
  routerMaxReplicas: number
  warnings: string[]
}

export function planCapacity(input: PlanInput): Plan {
  for (const [name, value] of Object.entries(input)) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a finite number >= 0 (got ${value})`)
  }
  for (const name of ['dataBytes', 'requestsPerSecond', 'valueBytes', 'nodeMemoryBytes', 'usableMemoryBytes', 'nodeThroughput', 'shardsPerNode', 'routerThroughput'] as const) {
    if (input[name] <= 0) throw new RangeError(`${name} must be > 0`)
  }
  if (!Number.isInteger(input.replicas) || !Number.isInteger(input.shardsPerNode)) throw new RangeError('replicas and shardsPerNode must be whole numbers')
  const warnings: string[] = []
  if (input.usableMemoryBytes > input.nodeMemoryBytes) throw new RangeError('usable memory cannot exceed node memory')

  // The seed: 1024 GB / 24 GB = 42.7 -> 43 nodes; 100k / 20k = 5 nodes; the larger wins.
  const storageNodes = Math.ceil(input.dataBytes / input.usableMemoryBytes)
  const throughputNodes = Math.ceil(input.requestsPerSecond / input.nodeThroughput)
  const seedBound: Bound = storageNodes >= throughputNodes ? 'storage' : 'throughput'
  const seedNodes = Math.max(storageNodes, throughputNodes)
  const copies = 1 + input.replicas

  // shardline's own accounting: every entry is charged its key, value and a fixed overhead, and
  // the ring gives the busiest shard up to RING_IMBALANCE of the mean. Replicas hold the same
  // data and (until replicas serve reads) take no traffic, so they multiply pods, not shards.
  const entryBytes = input.keyBytes + input.valueBytes
  const chargedBytes = entryBytes + ENTRY_OVERHEAD_BYTES
  const items = input.dataBytes / entryBytes
  const maxMemoryMiB = Math.floor(input.usableMemoryBytes / input.shardsPerNode / MiB)
  if (maxMemoryMiB < 4) throw new RangeError('each shard needs at least 4 MiB (usable memory / shards per node)')
  const storageShards = Math.ceil((items * chargedBytes * RING_IMBALANCE) / (maxMemoryMiB * MiB))
  const shardThroughput = input.nodeThroughput / input.shardsPerNode
  const throughputShards = Math.ceil((input.requestsPerSecond * RING_IMBALANCE) / shardThroughput)
  const shards = Math.max(storageShards, throughputShards)
  const pods = shards * copies
  // Copies of one shard go to different nodes (the chart's anti-affinity), so never fewer nodes than copies.
  const nodes = Math.max(Math.ceil(pods / input.shardsPerNode), copies)

  const memoryRequestMiB = shardMemoryRequestMiB(maxMemoryMiB)
  const memoryLimitMiB = shardMemoryLimitMiB(maxMemoryMiB)
  const nodeMiB = input.nodeMemoryBytes / MiB
  if (memoryLimitMiB * input.shardsPerNode > nodeMiB) {
    warnings.push(`${input.shardsPerNode} shard pod(s) with a ${memoryLimitMiB} MiB limit exceed the node's ${nodeMiB.toFixed(0)} MiB: lower the usable memory`)
  } else if (memoryRequestMiB * input.shardsPerNode > nodeMiB * 0.9) {
    warnings.push(`shard pods request ${memoryRequestMiB * input.shardsPerNode} MiB of the node's ${nodeMiB.toFixed(0)} MiB: little is left for the kubelet and the system`)
  }
  if (maxMemoryMiB > 32 * 1024) warnings.push(`a ${maxMemoryMiB} MiB budget means a V8 heap that large in one process: consider --shards-per-node to split a node's memory`)
  if (entryBytes > 1024 * 1024 + 250) warnings.push('the average entry is larger than the 1 MiB value limit')

  const routers = Math.max(MIN_ROUTERS, Math.ceil(input.requestsPerSecond / input.routerThroughput))
  return {
    input,
    seed: { storageNodes, throughputNodes, bound: seedBound, nodes: seedNodes, withReplicas: seedNodes * copies },
    entry: { bytes: entryBytes, chargedBytes, overheadFactor: chargedBytes / entryBytes, items },
    copies,
    maxMemoryMiB,
    storageShards,
    throughputShards,
    bound: storageShards >= throughputShards ? 'storage' : 'throughput',
    shards,
    pods,
    nodes,
    memoryRequestMiB,
    memoryLimitMiB,
    routers,
    routerMaxReplicas: routers * 2,
    warnings,
  }
}

/** Chart values (helm/shardline) for a plan: one pool of `shards` shards. */
export function planValues(plan: Plan, pool = 'main'): Record<string, unknown> {
  return {
    pools: {
      [pool]: { shards: plan.shards, replicasPerShard: plan.input.replicas, maxMemoryMiB: plan.maxMemoryMiB, policy: 'lru' },
    },
    defaultPool: pool,
    router: {
      replicas: plan.routers,
      autoscaling: { enabled: true, minReplicas: plan.routers, maxReplicas: plan.routerMaxReplicas },
    },
  }
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: MiB, mb: MiB, mib: MiB, g: GiB, gb: GiB, gib: GiB, t: TiB, tb: TiB, tib: TiB }

/** "1tb", "24gb", "1kb", "512" -> bytes (binary units, as the seed's 1 TB = 1024 GB). */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  const unit = match ? SIZE_UNITS[match[2].toLowerCase()] : undefined
  if (!match || unit === undefined) throw new RangeError(`invalid size "${text}": use bytes or a number with kb, mb, gb or tb`)
  return Math.round(Number(match[1]) * unit)
}

/** "100k", "1.5m", "20000" -> a count (decimal: k = 1000). */
export function parseCount(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([km]?)\s*$/i.exec(text)
  if (!match) throw new RangeError(`invalid number "${text}": use digits, optionally with k or m`)
  const unit = { '': 1, k: 1000, m: 1_000_000 }[match[2].toLowerCase() as '' | 'k' | 'm']
  return Math.round(Number(match[1]) * unit)
}

/** Bytes as a short binary size: 1099511627776 -> "1 TiB", 1536 -> "1.5 KiB". */
export function formatSize(bytes: number): string {
  const units: Array<[string, number]> = [['TiB', TiB], ['GiB', GiB], ['MiB', MiB], ['KiB', 1024]]
  for (const [name, size] of units) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(2))} ${name}`
  }
  return `${bytes} B`
}
