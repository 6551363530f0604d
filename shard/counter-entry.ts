// A counter as a PN-counter: a base value plus one component per writer (a shard process that
// took increments), merged per writer by version, so increments taken on both sides of a failover all count.

// Why components: a counter stored as a plain last-writer-wins value loses the increments one side
// took when the other side's newer write wins (a paused primary resuming on top of its old count).
// Each writer only ever changes its own component, so the newest version of a component is the
// whole truth about that writer, and merging two copies is a per-writer pick: commutative,
// idempotent, in any order. The epoch (the entry's version: the SET, delete or plain value the
// counter grew from) decides between copies that grew from different starts.
//
// Layout of the value bytes (latin1, after the entry header): "<sum>\n<base>" and then, sorted by
// writer, "\n<writer> <component> <version>" for each writer. The sum comes first so that a read
// is a slice; the rest is text so that a dump of a shard stays readable.

export interface CounterComponent {
  value: bigint
  /** The writer's clock when it last changed this component. */
  version: number
}

export interface CounterState {
  base: bigint
  components: Map<string, CounterComponent>
}

/** Writer names: what a shard process calls itself in components (no space, no newline). */
export const WRITER_PATTERN = /^[A-Za-z0-9_-]{1,32}$/
/** A signed decimal integer as stored: canonical, at most 20 digits (sums are checked by the store). */
const INTEGER = /^(?:0|-?[1-9][0-9]{0,19})$/
/** More writers than this on one key is not something a shard pair produces: refused as malformed. */
export const MAX_COMPONENTS = 1024

export function counterSum(state: CounterState): bigint {
  let sum = state.base
  for (const component of state.components.values()) sum += component.value
  return sum
}

/** The value bytes for a state (see the layout above); components sorted, so equal states pack equal. */
export function counterPayload(state: CounterState): string {
  const writers = state.components.size > 1 ? [...state.components.keys()].sort() : [...state.components.keys()]
  let text = `${counterSum(state)}\n${state.base}`
  for (const writer of writers) {
    const component = state.components.get(writer)!
    text += `\n${writer} ${component.value} ${component.version}`
  }
  return text
}

/**
 * The value bytes after adding delta to writer's component, and the new sum; null when writer has
 * no component yet. For this store's own, well-formed entries: the hot path of every increment
 * rewrites one line in place instead of parsing and packing every writer's (measured in
 * bench/counters.ts).
 */
export function addToComponent(payload: string, writer: string, delta: bigint, version: number): { payload: string; sum: bigint } | null {
  const marker = `\n${writer} `
  const at = payload.indexOf(marker)
  if (at === -1) return null
  const valueStart = at + marker.length
  const valueEnd = payload.indexOf(' ', valueStart)
  const lineEnd = payload.indexOf('\n', valueEnd)
  const firstBreak = payload.indexOf('\n')
  const sum = BigInt(payload.slice(0, firstBreak)) + delta
  const component = BigInt(payload.slice(valueStart, valueEnd)) + delta
  const rest = lineEnd === -1 ? '' : payload.slice(lineEnd)
  return { payload: `${sum}${payload.slice(firstBreak, valueStart)}${component} ${version}${rest}`, sum }
}

/** The state in a counter's value bytes, or null when they are not a well-formed counter. */
export function parseCounterPayload(payload: string): CounterState | null {
  const lines = payload.split('\n')
  if (lines.length < 2 || lines.length - 2 > MAX_COMPONENTS || !INTEGER.test(lines[0]) || !INTEGER.test(lines[1])) return null
  const state: CounterState = { base: BigInt(lines[1]), components: new Map() }
  for (const line of lines.slice(2)) {
    const [writer, value, version, extra] = line.split(' ')
    if (extra !== undefined || !WRITER_PATTERN.test(writer ?? '') || !INTEGER.test(value ?? '') || !/^[1-9][0-9]{0,15}$/.test(version ?? '')) return null
    if (state.components.has(writer)) return null
    state.components.set(writer, { value: BigInt(value), version: Number(version) })
  }
  if (counterSum(state) !== BigInt(lines[0])) return null
  return state
}

/**
 * Both copies' components, the newer one per writer. Copies of one epoch grew from one value and
 * so share a base; the larger is kept should they not, so that every side merges to the same.
 */
export function mergeCounters(a: CounterState, b: CounterState): CounterState {
  const components = new Map(a.components)
  for (const [writer, component] of b.components) {
    const mine = components.get(writer)
    if (mine === undefined || component.version > mine.version) components.set(writer, component)
  }
  return { base: a.base > b.base ? a.base : b.base, components }
}
