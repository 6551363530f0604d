// `shardline plan`: the capacity planner. Prints shards, pods, nodes and memory per shard for a data
// size and request rate, the seed's storage-vs-throughput reasoning, and values.yaml for helm/shardline;
// with --from N --to M, the share of a pool's keys that a resize moves.
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import {
  DEFAULT_NODE_THROUGHPUT,
  DEFAULT_ROUTER_THROUGHPUT,
  ENTRY_OVERHEAD_BYTES,
  MIN_ROUTERS,
  RING_IMBALANCE,
  SHARD_BASE_MIB,
  SHARD_HEAP_SLACK_MIB,
  GiB,
  formatSize,
  parseCount,
  parseSize,
  planCapacity,
  planValues,
  type Plan,
} from '../common/capacity.ts'
import { planResize, type ResizePlan } from '../common/resize-plan.ts'
import { DEFAULT_POINTS_PER_NODE } from '../common/ring.ts'
import { ConfigError } from '../common/validate.ts'

export const PLAN_USAGE = `shardline plan [options]   size a deployment; prints the reasoning and values.yaml for helm/shardline
  --data <size>              bytes stored, keys and values (default 1tb; units kb mb gb tb, binary)
  --rate <n>                 requests per second (default 100k)
  --value-size <size>        average value size (default 1kb)
  --key-size <size>          average key size (default 32)
  --replicas <n>             replicas per shard; copies = 1 + replicas (default 2, the seed's 3x)
  --node-memory <size>       memory per node (default 32gb)
  --usable-memory <size>     memory per node the cache fills: the shards' budgets (default 24gb)
  --node-throughput <n>      requests/s one node serves (default 20k: the seed's figure, not yet measured)
  --shards-per-node <n>      shard processes per node, splitting its usable memory (default 1)
  --router-throughput <n>    requests/s one router pod serves (default 20k, not yet measured)
  --pool <name>              the pool's name in values.yaml (default main)
  --values-only              print only values.yaml
shardline plan --from <n> --to <n> [options]   the share of a pool's keys that resizing it moves, on the real ring
  --points <n>               ring points per shard: the router's hashing.pointsPerShard (default ${DEFAULT_POINTS_PER_NODE})
  --pool-keys <n>            keys in the pool: also print how many move (the rebalance job's work)`

const DEFAULTS = {
  data: '1tb',
  rate: '100k',
  'value-size': '1kb',
  'key-size': '32',
  replicas: '2',
  'node-memory': '32gb',
  'usable-memory': '24gb',
  'node-throughput': String(DEFAULT_NODE_THROUGHPUT),
  'shards-per-node': '1',
  'router-throughput': String(DEFAULT_ROUTER_THROUGHPUT),
  pool: 'main',
}

const RESIZE_FLAGS = ['from', 'to', 'points', 'pool-keys'] as const
const SIZING_FLAGS = [...Object.keys(DEFAULTS), 'values-only']

const whole = (text: string) => {
  if (!/^\d+$/.test(text.trim())) throw new RangeError(`"${text}" must be a whole number`)
  return Number(text)
}

/** A flag's text through its parser; a parse error names the flag. */
function readFlag<T>(name: string, text: string, parse: (text: string) => T): T {
  try {
    return parse(text)
  } catch (error) {
    throw new ConfigError(`--${name}: ${(error as Error).message}`)
  }
}

/** Runs `shardline plan`; writes to `out` (stdout by default). Bad flags throw ConfigError. */
export async function runPlanCommand(argv: string[], out: (text: string) => void = (text) => process.stdout.write(text)): Promise<void> {
  const options = Object.fromEntries([...Object.keys(DEFAULTS), ...RESIZE_FLAGS].map((name) => [name, { type: 'string' as const }]))
  const parsed = parseArgs({ args: argv, options: { ...options, 'values-only': { type: 'boolean' }, help: { type: 'boolean' } }, strict: true, allowPositionals: false })
  const values = parsed.values as Record<string, string | boolean | undefined>
  if (values.help) {
    out(`${PLAN_USAGE}\n`)
    return
  }
  const given = (names: readonly string[]) => names.filter((name) => values[name] !== undefined).map((name) => `--${name}`)
  if (given(RESIZE_FLAGS).length > 0) {
    if (given(SIZING_FLAGS).length > 0) throw new ConfigError(`${given(SIZING_FLAGS).join(', ')} size a deployment and ${given(RESIZE_FLAGS).join(', ')} plan a resize: use one or the other`)
    runResizePlan(values, out)
    return
  }
  const flag = (name: keyof typeof DEFAULTS) => (values[name] as string | undefined) ?? DEFAULTS[name]
  const read = <T>(name: keyof typeof DEFAULTS, parse: (text: string) => T): T => readFlag(name, flag(name), parse)
  const pool = flag('pool')
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(pool)) throw new ConfigError(`--pool: "${pool}" must be lowercase letters, digits and dashes (a Kubernetes name)`)
  let plan: Plan
  try {
    plan = planCapacity({
      dataBytes: read('data', parseSize),
      requestsPerSecond: read('rate', parseCount),
      valueBytes: read('value-size', parseSize),
      keyBytes: read('key-size', parseSize),
      replicas: read('replicas', whole),
      nodeMemoryBytes: read('node-memory', parseSize),
      usableMemoryBytes: read('usable-memory', parseSize),
      nodeThroughput: read('node-throughput', parseCount),
      shardsPerNode: read('shards-per-node', whole),
      routerThroughput: read('router-throughput', parseCount),
    })
  } catch (error) {
    if (error instanceof RangeError) throw new ConfigError(error.message)
    throw error
  }
  const yaml = `# helm/shardline values from: shardline plan ${argv.filter((a) => a !== '--values-only').join(' ')}`.trimEnd() + `\n${stringify(planValues(plan, pool))}`
  out(values['values-only'] ? yaml : `${explainPlan(plan, values['node-throughput'] === undefined, values['router-throughput'] === undefined)}\nvalues.yaml for helm/shardline (helm install shardline ./helm/shardline -f plan.yaml):\n\n${yaml}`)
}

/** `shardline plan --from N --to M [--points n] [--pool-keys n]`. */
function runResizePlan(values: Record<string, string | boolean | undefined>, out: (text: string) => void): void {
  if (values.from === undefined || values.to === undefined) throw new ConfigError('--from and --to go together: shardline plan --from 3 --to 4')
  const count = (name: (typeof RESIZE_FLAGS)[number]) => (values[name] === undefined ? undefined : readFlag(name, values[name] as string, whole))
  const from = count('from')!
  const to = count('to')!
  let plan: ResizePlan
  try {
    plan = planResize({ from, to, pointsPerShard: count('points') })
  } catch (error) {
    if (error instanceof RangeError) throw new ConfigError(`plan --from ${from} --to ${to}: ${error.message}`)
    throw error
  }
  out(explainResize(plan, count('pool-keys')))
}

/** The resize in words and a table: the share that moves, where to, and every shard's share before and after. */
export function explainResize(plan: ResizePlan, poolKeys?: number): string {
  const percent = (share: number | null) => (share === null ? '-' : `${(share * 100).toFixed(2)}%`)
  const names = (list: string[]) => (list.length === 1 ? list[0] : `${list[0]}..${list.at(-1)}`)
  const out = plan.to > plan.from
  const changed = plan.shards.slice(Math.min(plan.from, plan.to)).map((shard) => shard.name)
  const lines = [
    `shardline plan --from ${plan.from} --to ${plan.to}: ${out ? 'scale out' : 'scale in'}, ${names(plan.shards.slice(0, plan.from).map((s) => s.name))} -> ${names(plan.shards.slice(0, plan.to).map((s) => s.name))}, ${plan.pointsPerShard} ring points per shard`,
    `keys whose owner changes: ${percent(plan.movedShare)} of ${plan.sampleKeys.toLocaleString('en-US')} sampled keys (the ring's exact share: ${percent(plan.exactMovedShare)}; ideal ${out ? `${plan.to - plan.from}/${plan.to}` : `${plan.from - plan.to}/${plan.from}`} = ${percent(Math.abs(plan.to - plan.from) / Math.max(plan.from, plan.to))})`,
    out
      ? `  they move to ${names(changed)}; sampled keys moving between shards that stay: ${plan.movedBetweenStaying}`
      : `  they leave ${names(changed)} (drain: pools.<name>.drainingShards=${changed.length}); sampled keys moving between shards that stay: ${plan.movedBetweenStaying}`,
  ]
  if (poolKeys !== undefined) lines.push(`  of ${poolKeys.toLocaleString('en-US')} keys in the pool, about ${Math.round(poolKeys * plan.exactMovedShare).toLocaleString('en-US')} move: the rebalance job's work (moved at its --rate)`)
  const rows = [['shard', 'before', 'after', 'change (points)'], ...plan.shards.map((shard) => [shard.name, percent(shard.before), percent(shard.after), `${((shard.after ?? 0) - (shard.before ?? 0) >= 0 ? '+' : '')}${(((shard.after ?? 0) - (shard.before ?? 0)) * 100).toFixed(2)}`])]
  rows.push(['ideal', percent(1 / plan.from), percent(1 / plan.to), ''])
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)))
  lines.push('', 'each shard\'s share of the keys (the ring\'s hash space), before and after; ideal = 1/N:')
  for (const row of rows) lines.push(`  ${row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  ')}`.trimEnd())
  return `${lines.join('\n')}\n`
}

/** The human part of the plan: inputs, the seed's arithmetic, shardline's, and the pod sizes. */
export function explainPlan(plan: Plan, defaultNodeThroughput = false, defaultRouterThroughput = false): string {
  const i = plan.input
  const n = (value: number, digits = 1) => Number(value.toFixed(digits)).toLocaleString('en-US')
  const gb = (bytes: number) => n(bytes / GiB)
  const seedRounded = Math.ceil(plan.seed.nodes / 10) * 10
  const lines = [
    `shardline plan: ${formatSize(i.dataBytes)} of data at ${n(i.requestsPerSecond, 0)} requests/s; entries of ${formatSize(i.keyBytes)} keys + ${formatSize(i.valueBytes)} values; ${plan.copies} copies of each shard (1 primary + ${i.replicas} replicas)`,
    `nodes: ${formatSize(i.nodeMemoryBytes)} of memory, ${formatSize(i.usableMemoryBytes)} usable by the cache, ${n(i.nodeThroughput, 0)} requests/s each${defaultNodeThroughput ? ' (the seed\'s figure: bench/RESULTS.md has no per-node measurement yet)' : ''}; ${i.shardsPerNode} shard process(es) per node`,
    '',
    'The seed\'s arithmetic (raw data, no overheads):',
    `  storage:    ${gb(i.dataBytes)} GiB / ${gb(i.usableMemoryBytes)} GiB per node = ${n(i.dataBytes / i.usableMemoryBytes, 2)} -> ${plan.seed.storageNodes} nodes`,
    `  throughput: ${n(i.requestsPerSecond, 0)} req/s / ${n(i.nodeThroughput, 0)} req/s per node = ${n(i.requestsPerSecond / i.nodeThroughput, 2)} -> ${plan.seed.throughputNodes} nodes`,
    `  -> ${plan.seed.bound}-bound: ${plan.seed.nodes} nodes; x${plan.copies} copies = ${plan.seed.withReplicas}` +
      (plan.seed.bound === 'storage' ? ` (the seed rounds ${plan.seed.nodes} up to ${seedRounded} for headroom it does not spell out: x${plan.copies} = ${seedRounded * plan.copies})` : ''),
    '',
    'shardline\'s plan (the headroom measured instead of rounded):',
    `  entries:    ${n(plan.entry.items / 1e6)} million of ${plan.entry.bytes} B, each charged ${plan.entry.chargedBytes} B (+${ENTRY_OVERHEAD_BYTES} B per entry): x${n(plan.entry.overheadFactor, 3)}`,
    `  ring:       the busiest shard holds up to x${RING_IMBALANCE} the mean share of keys (8000 points per shard, bench/ring.ts)`,
    `  storage:    ${gb(i.dataBytes)} GiB x ${n(plan.entry.overheadFactor, 3)} x ${RING_IMBALANCE} / ${n(plan.maxMemoryMiB / 1024, 2)} GiB per shard -> ${plan.storageShards} shards`,
    `  throughput: ${n(i.requestsPerSecond, 0)} req/s x ${RING_IMBALANCE} / ${n(i.nodeThroughput / i.shardsPerNode, 0)} req/s per shard -> ${plan.throughputShards} shards (primaries serve; replicas take traffic only in failover)`,
    `  -> ${plan.bound}-bound: ${plan.shards} shards x ${plan.copies} copies = ${plan.pods} shard pods on ${plan.nodes} nodes`,
    '',
    `per shard pod: maxMemory ${plan.maxMemoryMiB} MiB; memory request ${plan.memoryRequestMiB} Mi (budget + ${SHARD_BASE_MIB} MiB measured base), limit ${plan.memoryLimitMiB} Mi (1.1 x budget + ${SHARD_HEAP_SLACK_MIB} MiB V8 old-space slack + ${SHARD_BASE_MIB} MiB base + 1 for rounding)`,
    `routers: ${plan.routers} (${n(i.requestsPerSecond, 0)} req/s / ${n(i.routerThroughput, 0)} req/s each${defaultRouterThroughput ? ', an unmeasured default' : ''}, at least ${MIN_ROUTERS}); the autoscaler may add up to ${plan.routerMaxReplicas}`,
    'hot keys: the ring balances key counts, not requests; the routers spread reads of a hot key over copies on other shards (pools.<name>.hotKeys), so one hot key does not make its shard the bottleneck',
  ]
  for (const warning of plan.warnings) lines.push(`warning: ${warning}`)
  return `${lines.join('\n')}\n`
}
