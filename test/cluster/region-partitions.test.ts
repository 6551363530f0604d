// Seeded random partition schedules between two regions under a write load in both: links cut, black-holed
// (one way or both) and delayed, then healed. Every run must converge, and lose no acknowledged write that was not superseded.
import t from 'tap'
import { LOGICAL_RANGE } from '../../common/hlc.ts'
import { ClientLoop, History, RecordingClient, type HistoryOp } from '../helpers/history.ts'
import { delay, seededRandom } from '../helpers/replicated-cluster.ts'
import { compareRegions, startTwoRegions, type Region, type RegionEntry } from '../helpers/two-regions.ts'
import type { LinkProxy } from '../helpers/link-proxy.ts'

// The same seeds every run, so a red CI is reproducible. SHARDLINE_REGION_SEED=<seed> (as printed) replays
// one; SHARDLINE_FAULT_EXPLORE=1 draws fresh seeds instead, to look for schedules that fail.
const RUNS = 3
const replay = process.env.SHARDLINE_REGION_SEED
const seeds = replay !== undefined
  ? [Number(replay)]
  : Array.from({ length: RUNS }, (_, run) => (process.env.SHARDLINE_FAULT_EXPLORE ? Math.floor(Math.random() * 2 ** 32) : 0x2e610000 + run))
t.setTimeout(180_000)

/** A small key space, written from both regions, so that concurrent writes to one key happen all the time. */
const REGISTERS = 12
const COUNTERS = 3
const CLIENTS_PER_REGION = 2
/** Each client sends at most one op every this many ms: the load leaves CPU for the shippers on 2 cores. */
const PACE_MS = 15

type Links = 'east->west' | 'west->east' | 'both'
type Fault = { kind: 'cut' | 'blackhole' | 'delay'; links: Links; ms: number; gapMs: number; delayMs: number }

/** 2 to 4 faults one after another, each held 200-1200 ms after a gap of 100-500 ms; a delay adds 20-200 ms each way. */
function scheduleFor(seed: number): Fault[] {
  const random = seededRandom(seed)
  const between = (low: number, high: number) => low + Math.floor(random() * (high - low + 1))
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
  return Array.from({ length: between(2, 4) }, () => ({
    kind: pick(['cut', 'blackhole', 'delay'] as const),
    links: pick(['east->west', 'west->east', 'both'] as const),
    ms: between(200, 1200),
    gapMs: between(100, 500),
    delayMs: between(20, 200),
  }))
}

const describeFault = (fault: Fault) => `+${fault.gapMs}ms ${fault.kind}${fault.kind === 'delay' ? ` ${fault.delayMs}ms` : ''} ${fault.links} ${fault.ms}ms`

const regions = await startTwoRegions(t)
const { east, west } = regions
// Each shipper's first full scan is over before the first schedule counts resyncs.
await regions.waitCaughtUp()
const linksOf = (links: Links): LinkProxy[] => (links === 'both' ? regions.links : links === 'east->west' ? [east.outbound] : [west.outbound])

async function inject(fault: Fault): Promise<void> {
  const links = linksOf(fault.links)
  for (const link of links) {
    if (fault.kind === 'cut') link.cut()
    else if (fault.kind === 'blackhole') link.blackhole()
    else link.delayMs = fault.delayMs
  }
  await delay(fault.ms)
  for (const link of links) {
    link.heal()
    link.delayMs = 0
  }
}

/** Clients over HTTP in both regions: writes, deletes and increments of one small key space, from both sides. */
function startLoad(prefix: string, seed: number, history: History): ClientLoop[] {
  const registers = Array.from({ length: REGISTERS }, (_, i) => `${prefix}-r${i}`)
  const counters = Array.from({ length: COUNTERS }, (_, i) => `${prefix}-c${i}`)
  return [east, west].flatMap((region, r) => Array.from({ length: CLIENTS_PER_REGION }, (_, c) => {
    const client = new RecordingClient(`${region.name}-c${c}`, { name: region.name, url: region.router.url }, history)
    const random = seededRandom(seed + 1 + r * CLIENTS_PER_REGION + c)
    const pick = (keys: string[]) => keys[Math.floor(random() * keys.length)]
    return new ClientLoop(() => {
      const roll = random()
      if (roll < 0.6) return client.write(pick(registers))
      if (roll < 0.75) return client.delete(pick(registers))
      return client.incr(pick(counters))
    }, PACE_MS)
  }))
}

/** Versions are whole milliseconds of the routers' Date.now(); the histories' clock is performance.now(), a few ms apart at most. */
const CLOCK_SLACK_MS = 5
/** performance.now() (the histories' clock) as epoch ms, the clock versions are made from. */
const wallMs = (at: number) => performance.timeOrigin + at

interface Violation {
  key: string
  detail: string
}

/**
 * Every register's final entry (the same in both regions, checked before) against the history:
 *  - it is a value some write sent and that did not fail, a tombstone some delete that did not fail made, or absent only if no write was acknowledged;
 *  - no acknowledged write or delete is lost unless superseded: the final entry is that write, or its version is newer than
 *    that op can have (an op's version is its router's clock when it was routed, so at least the op's start; older = the op was lost).
 */
function checkRegisters(ops: HistoryOp[], finals: Map<string, RegionEntry>): Violation[] {
  const violations: Violation[] = []
  const byKey = new Map<string, HistoryOp[]>()
  for (const op of ops) if (op.kind === 'write' || op.kind === 'delete') byKey.set(op.key, [...(byKey.get(op.key) ?? []), op])
  for (const [key, mutations] of byKey) {
    const final = finals.get(key)
    const acked = mutations.filter((op) => op.outcome === 'ok')
    if (final === undefined) {
      if (acked.some((op) => op.kind === 'write')) violations.push({ key, detail: `absent in both regions, though ${acked.length} writes or deletes were acknowledged` })
      continue
    }
    const shown = final.kind === 'value' ? mutations.find((op) => op.kind === 'write' && op.value === final.payload) : undefined
    if (final.kind === 'value' && (shown === undefined || shown.outcome === 'failed')) violations.push({ key, detail: `holds ${JSON.stringify(final.payload)}, which ${shown ? 'a failed write sent' : 'no write sent'}` })
    if (final.kind === 'tombstone' && !mutations.some((op) => op.kind === 'delete' && op.outcome !== 'failed')) violations.push({ key, detail: 'a tombstone, but no delete of it may have applied' })
    if (final.kind === 'counter') violations.push({ key, detail: 'a counter, but only writes and deletes were sent to it' })
    const finalMs = Math.floor(final.version / LOGICAL_RANGE)
    for (const op of acked) {
      if (op === shown) continue
      if (finalMs < wallMs(op.invokedAt) - CLOCK_SLACK_MS) {
        violations.push({ key, detail: `the acknowledged ${op.kind} ${op.client} ${JSON.stringify(op.value ?? null)} (started ${new Date(wallMs(op.invokedAt)).toISOString()}) is lost: the final ${final.kind} ${JSON.stringify(final.payload)} has the older version ${final.version} (${new Date(finalMs).toISOString()})` })
      }
    }
  }
  return violations
}

/** Each counter's total in both regions: at least every acknowledged increment, at most those that may have applied too. */
async function checkCounters(ops: HistoryOp[]): Promise<{ violations: Violation[]; summary: string[] }> {
  const violations: Violation[] = []
  const summary: string[] = []
  const keys = [...new Set(ops.filter((op) => op.kind === 'incr').map((op) => op.key))]
  for (const key of keys) {
    const increments = ops.filter((op) => op.kind === 'incr' && op.key === key)
    const acked = increments.filter((op) => op.outcome === 'ok').length
    const unknown = increments.filter((op) => op.outcome === 'unknown').length
    for (const region of [east, west]) {
      const total = await counterTotal(region, key)
      summary.push(`${region.name}/${key}=${total}`)
      if (total < acked || total > acked + unknown) violations.push({ key, detail: `total in ${region.name} is ${total}: ${acked} increments acknowledged, ${unknown} unknown` })
    }
  }
  return { violations, summary }
}

async function counterTotal(region: Region, key: string): Promise<number> {
  const response = await fetch(`${region.router.url}/${encodeURIComponent(key)}/counter`, { signal: AbortSignal.timeout(5000) })
  if (response.status !== 200) throw new Error(`counter ${key} in ${region.name}: ${response.status} ${await response.text()}`)
  return ((await response.json()) as { value: number }).value
}

const resyncs = async () => Object.fromEntries(await Promise.all([east, west].flatMap((region) => (['partial', 'full'] as const).map(async (kind) =>
  [`${region.name}:${kind}`, await region.shardMetric('shardline_region_resyncs_total', { peer: regions.peerOf(region).name, kind })] as const))))

const timings: number[] = []
for (const [run, seed] of seeds.entries()) {
  await t.test(`schedule ${run + 1}/${seeds.length}, seed ${seed}`, async (t) => {
    const startedAt = Date.now()
    const faults = scheduleFor(seed)
    t.comment(`seed ${seed} (replay with SHARDLINE_REGION_SEED=${seed}): ${faults.map(describeFault).join(', ')}`)
    // A failed schedule must not leave its faults to the next one.
    for (const link of regions.links) {
      link.heal()
      link.delayMs = 0
    }
    const resyncsBefore = await resyncs()
    const history = new History()
    const prefix = `seed${seed}`
    const loops = startLoad(prefix, seed, history)
    await delay(300)
    for (const fault of faults) {
      await delay(fault.gapMs)
      await inject(fault)
    }
    await delay(300)
    await Promise.all(loops.map((loop) => loop.stop()))
    const stoppedAt = Date.now()
    await regions.waitCaughtUp(30_000)
    const caughtUpMs = Date.now() - stoppedAt

    const comparison = await compareRegions(regions.regions, (key) => key.startsWith(`${prefix}-`))
    const registers = checkRegisters(history.ops, (await east.snapshot()).entries)
    const counters = await checkCounters(history.ops)
    const resyncsAfter = await resyncs()
    timings.push(Date.now() - startedAt)
    const count = (kind: string, outcome: string) => history.ops.filter((op) => op.kind === kind && op.outcome === outcome).length
    t.comment(`ops: ${['write', 'delete', 'incr'].map((kind) => `${kind} ${count(kind, 'ok')} ok/${count(kind, 'unknown')} unknown/${count(kind, 'failed')} failed`).join(', ')}`)
    t.comment(`caught up ${caughtUpMs} ms after the load stopped; resyncs during the run: ${Object.entries(resyncsAfter).map(([name, value]) => `${name} +${value - resyncsBefore[name]}`).join(', ')}; link bytes since the start ${regions.links.map((link) => `${link.name} ${link.bytes.forward}`).join(', ')}`)
    t.comment(`region digests: ${JSON.stringify(comparison.digests)}; counters: ${counters.summary.join(' ')}`)
    t.same(comparison.differences, [], `both regions hold the same entries (${comparison.differing} keys differ)`)
    t.equal(comparison.digests[0].sha1, comparison.digests[1].sha1, 'region-level digests equal')
    t.same(registers, [], 'no acknowledged write or delete lost unless superseded by a newer one; every final value was written')
    t.same(counters.violations, [], 'every counter counts each acknowledged increment once, in both regions')
  })
}

if (timings.length > 0) t.comment(`${timings.length} schedules, ${(timings.reduce((a, b) => a + b, 0) / 1000).toFixed(1)} s in all, longest ${Math.max(...timings)} ms`)
