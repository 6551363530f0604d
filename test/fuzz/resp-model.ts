// The RESP fuzz property's vocabulary and model: keys, values and numbers at the edges, the commands
// built from them, malformed frames, and every answer a Redis-like shard may give (possible worlds).
import { isUtf8 } from 'node:buffer'
import fc from 'fast-check'
import { INT64_MAX, INT64_MIN, MAX_TTL_MS, MAX_TTL_SECONDS } from '../../common/limits.ts'
import { bytesDigest, choices, describeBytes, labelled, laxInteger, maybe, strictInt64, type Outcome } from './fuzz-support.ts'
import { formatReply, type Reply } from './resp-wire.ts'

// ---- Vocabulary ----

export interface KeyChoice {
  name: string
  bytes: Buffer
  /** Within the shard's key rules (1 to 250 bytes); an invalid key is refused with -ERR. */
  valid: boolean
}

const keyChoice = (name: string, bytes: Buffer, valid = true): KeyChoice => ({ name, bytes, valid })

/** The key limit the fuzzed shard is configured with (its config's limits.maxKeyBytes). */
export const MAX_KEY_BYTES = 250

/** Few keys, so that commands collide; the edges of the key rules among them. */
const KEYS: readonly KeyChoice[] = [
  keyChoice('a', Buffer.from('a')),
  keyChoice('b', Buffer.from('b')),
  keyChoice('binary', Buffer.from([0, 0xff, 13, 10, 32, 0x85])),
  keyChoice('utf8', Buffer.from('ключ', 'utf8')),
  keyChoice(`${MAX_KEY_BYTES} bytes`, Buffer.alloc(MAX_KEY_BYTES, 'k')),
  keyChoice(`${MAX_KEY_BYTES + 1} bytes`, Buffer.alloc(MAX_KEY_BYTES + 1, 'k'), false),
  keyChoice('empty', Buffer.alloc(0), false),
]
export const VALID_KEYS = KEYS.filter((key) => key.valid)

const MiB = 1024 * 1024
/** The shard's default value limit exactly, and one byte past it. */
const LARGEST_VALUE = Buffer.alloc(MiB, 'x')
const TOO_LARGE_VALUE = Buffer.alloc(MiB + 1, 'x')
const MAX_VALUE_BYTES = MiB

/** Integers and near-integers at the edges, as the text a client sends. */
const EDGE_NUMBERS = [
  '0', '-1', '1', '2147483648', '281474976710656', '9007199254740991', '9007199254740992', '9007199254740993',
  '-9007199254740993', '9223372036854775807', '9223372036854775808', '-9223372036854775808', '-9223372036854775809',
  '18446744073709551616', '1e300', '1.5', 'NaN', '', 'abc', '-0', '007', '+5', ' 5',
]
const EXPIRY_AMOUNTS = [...EDGE_NUMBERS, '100', '1000', '3600', '600000', String(MAX_TTL_SECONDS), String(MAX_TTL_SECONDS + 1), String(MAX_TTL_MS), String(MAX_TTL_MS + 1)]
const COUNTER_VALUES = ['0', '42', '-7', String(INT64_MAX), String(INT64_MIN), String(INT64_MAX - 1n), String(INT64_MIN + 1n), '9007199254740993', '9223372036854775808', '-9223372036854775809', '007', '-0', '1.5', '1e3', ' 5', '+5']
const FLAGS = ['0', '1', '4294967295', '4294967296', '-1', 'abc']

/** How far ahead of its clock a shard takes versions (the contract's default maxVersionDriftMs). */
const VERSION_DRIFT_MS = 60_000
const LOGICAL_RANGE = 2048n

export type VersionChoice =
  | { kind: 'fresh' }
  | { kind: 'ahead'; ms: number }
  | { kind: 'past'; ms: number }
  | { kind: 'literal'; text: string }

const VERSIONS: readonly VersionChoice[] = [
  { kind: 'fresh' },
  { kind: 'ahead', ms: 20_000 },
  { kind: 'ahead', ms: 10 * 60_000 },
  { kind: 'past', ms: 3_600_000 },
  ...['1', '0', '-1', '007', '9007199254740991', '9007199254740992', '9223372036854775807', '9223372036854775808', '18446744073709551616', '1.5', 'abc', ''].map((text) => ({ kind: 'literal' as const, text })),
]

export type Command =
  | { name: 'GET' | 'TTL' | 'PTTL' | 'SL.GETV' | 'INCR' | 'DECR'; key: KeyChoice }
  | { name: 'SET'; key: KeyChoice; value: Buffer; options: SetOptions }
  | { name: 'DEL' | 'EXISTS' | 'MGET'; keys: KeyChoice[] }
  | { name: 'MSET'; pairs: [KeyChoice, Buffer][] }
  | { name: 'INCRBY' | 'DECRBY' | 'EXPIRE' | 'PEXPIRE'; key: KeyChoice; amount: string }
  | { name: 'SL.SETV'; key: KeyChoice; value: Buffer; version: VersionChoice; px?: string; flags?: string }
  | { name: 'SL.DELV'; key: KeyChoice; version: VersionChoice }

export interface SetOptions {
  condition?: 'NX' | 'XX'
  expiry?: { unit: 'EX' | 'PX'; amount: string } | 'KEEPTTL'
  /** Tokens that make the command a syntax error. */
  junk?: string[]
}

export type RespOp =
  | { kind: 'command'; command: Command; label: string }
  | { kind: 'pipeline'; commands: Command[]; label: string }
  | { kind: 'frames'; bytes: Buffer; label: string }

// ---- Arbitraries ----

const anyKey = fc.oneof({ arbitrary: fc.constantFrom(...VALID_KEYS), weight: 12 }, { arbitrary: fc.constantFrom(...KEYS.filter((key) => !key.valid)), weight: 1 })
const value = fc.oneof(
  { arbitrary: fc.constantFrom('v', '', 'héllo', ...COUNTER_VALUES).map((text) => Buffer.from(text, 'utf8')), weight: 12 },
  { arbitrary: fc.uint8Array({ maxLength: 12 }).map((bytes) => Buffer.from(bytes)), weight: 4 },
  { arbitrary: fc.constantFrom(LARGEST_VALUE, TOO_LARGE_VALUE), weight: 1 },
)
const counterValue = fc.constantFrom(...COUNTER_VALUES).map((text) => Buffer.from(text))
// Numbers that are taken come up more often than the refused ones, so that commands also land.
const expiryAmount = fc.oneof(
  { arbitrary: fc.constantFrom('1', '100', '1000', '3600', '600000', '2147483648', String(MAX_TTL_SECONDS), String(MAX_TTL_MS)), weight: 2 },
  { arbitrary: fc.constantFrom(...EXPIRY_AMOUNTS), weight: 1 },
)
const increment = fc.oneof(
  { arbitrary: fc.constantFrom(...EDGE_NUMBERS.filter((text) => strictInt64(text) !== null)), weight: 3 },
  { arbitrary: fc.constantFrom(...EDGE_NUMBERS), weight: 1 },
)
const setOptions: fc.Arbitrary<SetOptions> = fc.record({
  condition: maybe(fc.constantFrom('NX' as const, 'XX' as const), 1, 3),
  expiry: maybe(fc.oneof(fc.record({ unit: fc.constantFrom('EX' as const, 'PX' as const), amount: expiryAmount }), fc.constant('KEEPTTL' as const)), 1, 1),
  // Rare: a syntax error hides the option checks behind it.
  junk: maybe(fc.constantFrom(['EX'], ['NX', 'XX'], ['FOO'], ['PX', '10', 'EX', '10']), 1, 12),
})
const keys = fc.array(anyKey, { minLength: 1, maxLength: 4 })
// Versions the shard takes come up more often than the refused ones.
const version = fc.oneof({ arbitrary: fc.constantFrom(...VERSIONS.slice(0, 2), VERSIONS[3]), weight: 3 }, { arbitrary: fc.constantFrom(...VERSIONS), weight: 2 })

const commands = {
  read: fc.record({ name: fc.constantFrom('GET' as const, 'TTL' as const, 'PTTL' as const, 'SL.GETV' as const), key: anyKey }),
  set: fc.record({ name: fc.constant('SET' as const), key: anyKey, value, options: setOptions }),
  setCounter: fc.record({ name: fc.constant('SET' as const), key: anyKey, value: counterValue, options: fc.constant({}) }),
  multi: fc.record({ name: fc.constantFrom('DEL' as const, 'EXISTS' as const, 'MGET' as const), keys }),
  mset: fc.record({ name: fc.constant('MSET' as const), pairs: fc.array(fc.tuple(anyKey, value), { minLength: 1, maxLength: 3 }) }),
  expire: fc.record({ name: fc.constantFrom('EXPIRE' as const, 'PEXPIRE' as const), key: anyKey, amount: expiryAmount }),
  step: fc.record({ name: fc.constantFrom('INCR' as const, 'DECR' as const), key: anyKey }),
  incrBy: fc.record({ name: fc.constantFrom('INCRBY' as const, 'DECRBY' as const), key: anyKey, amount: increment }),
  setVersioned: fc.record({
    name: fc.constant('SL.SETV' as const), key: anyKey, value, version,
    px: maybe(expiryAmount, 1, 1),
    flags: maybe(fc.constantFrom(...FLAGS), 1, 2),
  }),
  deleteVersioned: fc.record({ name: fc.constant('SL.DELV' as const), key: anyKey, version }),
} satisfies Record<string, fc.Arbitrary<Command>>

export type CommandFamily = keyof typeof commands

/** Commands from the families given, each with its weight. */
export function commandArbitrary(weights: Partial<Record<CommandFamily, number>>): fc.Arbitrary<Command> {
  return fc.oneof(...Object.entries(weights).map(([family, weight]) => ({ arbitrary: commands[family as CommandFamily] as fc.Arbitrary<Command>, weight: weight! })))
}

export function commandOp(command: fc.Arbitrary<Command>): fc.Arbitrary<RespOp> {
  return command.map((c) => labelled({ kind: 'command' as const, command: c }, describeCommand(c)))
}

export function pipelineOp(command: fc.Arbitrary<Command>): fc.Arbitrary<RespOp> {
  return fc.array(command, { minLength: 2, maxLength: 6 }).map((list) => labelled({ kind: 'pipeline' as const, commands: list }, `pipeline [${list.map(describeCommand).join('; ')}]`))
}

/**
 * Malformed and unfinished frames, each sent on its own connection that then hangs up. Built
 * from tokens that can spell no command that writes (no SET, DEL, INCR, EXPIRE, FLUSH, SL.*), so
 * whatever the shard makes of them, the data stays as the model has it.
 */
const FIXED_FRAMES = [
  '*-5\r\nPING\r\n', '*1\r\n$99999999999\r\n', '$99999999999\r\n', '*1\r\n$-1\r\n', '*2\r\n$3\r\nGET\r\n$-5\r\n',
  '*99999999999999999999\r\n', '*1048577\r\n', '*1\r\nfoo\r\n', '*2\r\n$3\r\nGET\r\n$1\r\nxY\r\n', '*1\r\n$0\r\n\r\n',
  '*0\r\n*1\r\n$4\r\nPING\r\n', '*3\r\n$3\r\nGET\r\n$1\r\nx\r\n$1048576\r\nabc', '*2\r\n$4\r\nPING\r\n', '\x00\xff\r\n',
  'PING\r\nPING', '*1\r\n$4\r\nPI', '*9223372036854775808\r\n', '*1\r\n$18446744073709551616\r\n', ':1\r\n', '+OK\r\n',
  '-ERR\r\n', '*1\r\n$4\r\nPING\r', '\r\n\r\n\r\n', '*1\r\n$4\r\nPING\r\n*1\r\n$-9223372036854775809\r\n',
].map((text) => Buffer.from(text, 'latin1'))
const FRAME_TOKENS = ['*', '$', '\r\n', '\r', '\n', ' ', '-', '0', '1', '3', '4', '-1', '-5', '99999999999', '18446744073709551616', 'PING', 'ECHO', 'GET', 'EXISTS', 'PTTL', 'x', '\x00', '\xff', '"']

export const framesOp: fc.Arbitrary<RespOp> = fc.oneof(
  fc.constantFrom(...FIXED_FRAMES),
  fc.array(fc.constantFrom(...FRAME_TOKENS), { minLength: 1, maxLength: 24 }).map((tokens) => Buffer.from(tokens.join(''), 'latin1')),
  fc.constant(Buffer.alloc(70 * 1024, 'a')),
).map((bytes) => labelled({ kind: 'frames' as const, bytes }, `frames ${describeBytes(bytes)} then hang up`))

// ---- Commands on the wire ----

export function describeCommand(command: Command): string {
  const key = (k: KeyChoice) => k.bytes.length <= 12 ? JSON.stringify(k.bytes.toString(isUtf8(k.bytes) ? 'utf8' : 'latin1')) : `<${k.name}>`
  switch (command.name) {
    case 'SET': {
      const options = [command.options.condition, command.options.expiry === 'KEEPTTL' ? 'KEEPTTL' : command.options.expiry && `${command.options.expiry.unit} ${JSON.stringify(command.options.expiry.amount)}`, ...(command.options.junk ?? [])]
      return ['SET', key(command.key), describeBytes(command.value), ...options.filter(Boolean)].join(' ')
    }
    case 'DEL': case 'EXISTS': case 'MGET':
      return [command.name, ...command.keys.map(key)].join(' ')
    case 'MSET':
      return ['MSET', ...command.pairs.flatMap(([k, v]) => [key(k), describeBytes(v)])].join(' ')
    case 'INCRBY': case 'DECRBY': case 'EXPIRE': case 'PEXPIRE':
      return `${command.name} ${key(command.key)} ${JSON.stringify(command.amount)}`
    case 'SL.SETV':
      return ['SL.SETV', key(command.key), describeBytes(command.value), describeVersion(command.version), command.px !== undefined && `PX ${JSON.stringify(command.px)}`, command.flags !== undefined && `FLAGS ${JSON.stringify(command.flags)}`].filter(Boolean).join(' ')
    case 'SL.DELV':
      return `SL.DELV ${key(command.key)} ${describeVersion(command.version)}`
    default:
      return `${command.name} ${key(command.key)}`
  }
}

function describeVersion(version: VersionChoice): string {
  switch (version.kind) {
    case 'fresh': return '<a version newer than any the shard holds>'
    case 'ahead': return `<${version.ms} ms ahead of now>`
    case 'past': return `<${version.ms} ms ago>`
    case 'literal': return JSON.stringify(version.text)
  }
}

/** The command's arguments, its version (if any) already chosen as text. */
export function commandArgs(command: Command, versionText: string | undefined): (string | Buffer)[] {
  switch (command.name) {
    case 'SET': {
      const { condition, expiry, junk } = command.options
      const options = [...(condition ? [condition] : []), ...(expiry === 'KEEPTTL' ? ['KEEPTTL'] : expiry ? [expiry.unit, expiry.amount] : []), ...(junk ?? [])]
      return ['SET', command.key.bytes, command.value, ...options]
    }
    case 'DEL': case 'EXISTS': case 'MGET':
      return [command.name, ...command.keys.map((k) => k.bytes)]
    case 'MSET':
      return ['MSET', ...command.pairs.flat().map((part) => 'bytes' in part ? part.bytes : part)]
    case 'INCRBY': case 'DECRBY': case 'EXPIRE': case 'PEXPIRE':
      return [command.name, command.key.bytes, command.amount]
    case 'SL.SETV':
      return ['SL.SETV', command.key.bytes, command.value, versionText!, ...(command.px !== undefined ? ['PX', command.px] : []), ...(command.flags !== undefined ? ['FLAGS', command.flags] : [])]
    case 'SL.DELV':
      return ['SL.DELV', command.key.bytes, versionText!]
    default:
      return [command.name, command.key.bytes]
  }
}

// ---- The model ----

/** A version known to lie in [lo, hi]: exact for one a client sent, a range for one the shard's clock gave. */
interface Version {
  lo: bigint
  hi: bigint
}

type Ttl = { kind: 'none' } | { kind: 'long' | 'short'; ms: number; since: number }

type Entry =
  /** counter: increments made it (SL.GETV marks it); any other write, EXPIRE included, makes a plain value. */
  | { kind: 'value'; bytes: Buffer; flags: number; ttl: Ttl; version: Version; counter?: true }
  /** A delete remembered with its version (for a minute, longer than a run), so older writes stay out. */
  | { kind: 'tombstone'; version: Version }

export type World = ReadonlyMap<string, Entry>

export const EMPTY_WORLD: World = new Map()

/** TTLs shorter than this may run out during a run: the model then allows the key or a miss. */
const SHORT_TTL_MS = 10 * 60_000

export function fingerprint(world: World): string {
  return [...world.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, entry]) => {
    const version = `${entry.version.lo}-${entry.version.hi}`
    if (entry.kind === 'tombstone') return `${key}=deleted@${version}`
    const ttl = entry.ttl.kind === 'none' ? 'none' : `${entry.ttl.kind}${entry.ttl.ms}@${entry.ttl.since}`
    return `${key}=${bytesDigest(entry.bytes)}/${entry.flags}/${ttl}@${version}`
  }).join(' ')
}

/**
 * Tracks the shard's hybrid logical clock from outside: `ceiling` is at least every version the
 * shard can have given or taken so far, `floor` at most the largest it certainly took.
 */
export class ClockBounds {
  private ceiling = BigInt(Date.now() + 1) * LOGICAL_RANGE
  private floor = 0n

  /** The text of a chosen version, at the moment it is sent. */
  versionText(choice: VersionChoice): string {
    const now = BigInt(Date.now())
    switch (choice.kind) {
      case 'fresh': return String(this.ceiling + 1n)
      case 'ahead': return String((now + BigInt(choice.ms)) * LOGICAL_RANGE)
      case 'past': return String((now - BigInt(choice.ms)) * LOGICAL_RANGE)
      case 'literal': return choice.text
    }
  }

  /** After a command: the range its clock-versioned writes fell in. */
  afterCommand(args: readonly (string | Buffer)[], sentAt: number, repliedAt: number, sentVersion: bigint | null): Version {
    let ceiling = this.ceiling
    const realTime = BigInt(repliedAt + 1) * LOGICAL_RANGE
    if (realTime > ceiling) ceiling = realTime
    if (sentVersion !== null && sentVersion > ceiling) ceiling = sentVersion
    // Each argument can cost at most one tick of the clock (MSET's pairs, DEL's keys).
    this.ceiling = ceiling + BigInt(args.length)
    const lo = BigInt(sentAt) * LOGICAL_RANGE > this.floor ? BigInt(sentAt) * LOGICAL_RANGE : this.floor + 1n
    return { lo, hi: this.ceiling }
  }

  /** The shard certainly took this version (it stored it). */
  taken(version: bigint): void {
    if (version > this.floor) this.floor = version
  }
}

export interface StepContext {
  /** Client clock just before sending and just after the reply. */
  sentAt: number
  repliedAt: number
  /** Where this command's clock-versioned writes fall. */
  clock: Version
  /** The version sent (SL.SETV / SL.DELV), as text. */
  versionText?: string
}

/** A reply the model allows. */
type Expected =
  | { kind: 'simple'; text: string }
  | { kind: 'error'; pattern: RegExp }
  | { kind: 'integer'; min: bigint; max: bigint }
  | { kind: 'bulk'; value: Buffer | null }
  | { kind: 'array'; items: Expected[] | null }

const ANY_ERROR = /^ERR /
const NOT_INTEGER = /^ERR value is not an integer or out of range/
const OVERFLOW = /^ERR increment or decrement would overflow/
const BAD_EXPIRY = /^ERR (invalid expire time in '(set|expire|pexpire|sl\.setv)' command|value is not an integer or out of range)/i
const SYNTAX = /^ERR syntax error/

function matches(expected: Expected, reply: Reply): boolean {
  switch (expected.kind) {
    case 'simple':
      return reply.kind === 'simple' && reply.text === expected.text
    case 'error':
      return reply.kind === 'error' && expected.pattern.test(reply.text)
    case 'integer':
      return reply.kind === 'integer' && reply.value >= expected.min && reply.value <= expected.max
    case 'bulk':
      return reply.kind === 'bulk' && (expected.value === null ? reply.value === null : reply.value !== null && reply.value.equals(expected.value))
    case 'array':
      if (reply.kind !== 'array') return false
      if (expected.items === null || reply.items === null) return expected.items === reply.items
      return reply.items.length === expected.items.length && expected.items.every((item, i) => matches(item, reply.items![i]))
  }
}

function describeExpected(expected: Expected): string {
  switch (expected.kind) {
    case 'simple': return `+${expected.text}`
    case 'error': return `-${expected.pattern.source}`
    case 'integer': return expected.min === expected.max ? `:${expected.min}` : `:${expected.min}..${expected.max}`
    case 'bulk': return expected.value === null ? '(nil)' : formatReply({ kind: 'bulk', value: expected.value })
    case 'array': return expected.items === null ? '*-1' : `[${expected.items.map(describeExpected).join(', ')}]`
  }
}

const simple = (text: string): Expected => ({ kind: 'simple', text })
const error = (pattern: RegExp): Expected => ({ kind: 'error', pattern })
const integer = (value: bigint | number): Expected => ({ kind: 'integer', min: BigInt(value), max: BigInt(value) })
const integerIn = (min: bigint | number, max: bigint | number): Expected => ({ kind: 'integer', min: BigInt(min), max: BigInt(max) })
const bulk = (value: Buffer | null): Expected => ({ kind: 'bulk', value })
const NIL = bulk(null)

function outcome(expected: Expected, next: World): Outcome<World, Reply> {
  return { expected: describeExpected(expected), accepts: (reply) => matches(expected, reply), next }
}

const keyOf = (key: KeyChoice) => key.bytes.toString('latin1')

/**
 * The worlds a step can see: every short-TTL key it touches either still there or run out
 * (expiry removes an entry whole, leaving no tombstone).
 */
function expiryVariants(world: World, keys: readonly KeyChoice[]): World[] {
  const short = [...new Set(keys.filter((k) => k.valid).map(keyOf))].filter((k) => {
    const entry = world.get(k)
    return entry?.kind === 'value' && entry.ttl.kind === 'short'
  })
  return choices(short, (k) => [k, null]).map((picked) => {
    const expired = short.filter((_, i) => picked[i] === null)
    if (expired.length === 0) return world
    const next = new Map(world)
    for (const k of expired) next.delete(k)
    return next
  })
}

function live(world: World, key: KeyChoice): (Entry & { kind: 'value' }) | undefined {
  const entry = world.get(keyOf(key))
  return entry?.kind === 'value' ? entry : undefined
}

function withEntry(world: World, key: KeyChoice, entry: Entry | undefined): World {
  const next = new Map(world)
  if (entry === undefined) next.delete(keyOf(key))
  else next.set(keyOf(key), entry)
  return next
}

/** Readings of an integer argument: null is "refused"; Redis's reading first, then a laxer one. */
function integerReadings(text: string): (bigint | null)[] {
  const strict = strictInt64(text)
  if (strict !== null) return [strict]
  const lax = laxInteger(text)
  return lax === null ? [null] : [null, lax]
}

function ttlOf(ms: bigint, since: number): Ttl {
  return { kind: ms < BigInt(SHORT_TTL_MS) ? 'short' : 'long', ms: Number(ms), since }
}

/** The expected PTTL (ms) of a live entry, from what the client saw of the clock. */
function pttl(entry: Entry & { kind: 'value' }, context: StepContext): Expected {
  const { ttl } = entry
  if (ttl.kind === 'none') return integer(-1)
  if (ttl.kind === 'short') return integerIn(0, ttl.ms)
  return integerIn(Math.max(0, ttl.ms - (context.repliedAt - ttl.since) - 1), ttl.ms)
}

// Redis rounds TTL to the nearest second.
function toSeconds(expected: Expected): Expected {
  if (expected.kind !== 'integer' || expected.min < 0n) return expected
  return integerIn((expected.min + 500n) / 1000n, (expected.max + 500n) / 1000n)
}

/** Whether the shard takes this version at all (a positive integer within its drift). */
function versionReadings(choice: VersionChoice, text: string): (bigint | null)[] {
  if (choice.kind === 'fresh' || choice.kind === 'past') return [BigInt(text)]
  if (choice.kind === 'ahead') return choice.ms < VERSION_DRIFT_MS / 2 ? [BigInt(text)] : [null]
  const aheadLimit = BigInt(Date.now() + VERSION_DRIFT_MS / 2) * LOGICAL_RANGE
  return integerReadings(text).map((reading) => (reading !== null && reading > 0n && reading < aheadLimit ? reading : null))
}

/** Whether a write with version v lands over an entry: yes, no, or either when the ranges overlap. */
function newer(v: bigint, entry: Entry | undefined): boolean[] {
  if (entry === undefined || v > entry.version.hi) return [true]
  if (v <= entry.version.lo) return [false]
  return [true, false]
}

/** Everything the shard may answer to one command in one world. */
export function outcomes(world: World, command: Command, context: StepContext): Outcome<World, Reply>[] {
  const touched = 'keys' in command ? command.keys : 'pairs' in command ? command.pairs.map(([k]) => k) : [command.key]
  return expiryVariants(world, touched).flatMap((w) => commandOutcomes(w, command, context))
}

function commandOutcomes(world: World, command: Command, context: StepContext): Outcome<World, Reply>[] {
  const refused = (pattern: RegExp) => [outcome(error(pattern), world)]
  const clockVersion = context.clock
  switch (command.name) {
    case 'GET': {
      if (!command.key.valid) return refused(ANY_ERROR)
      return [outcome(bulk(live(world, command.key)?.bytes ?? null), world)]
    }
    case 'TTL': case 'PTTL': {
      if (!command.key.valid) return refused(ANY_ERROR)
      const entry = live(world, command.key)
      const ms = entry === undefined ? integer(-2) : pttl(entry, context)
      return [outcome(command.name === 'TTL' ? toSeconds(ms) : ms, world)]
    }
    case 'SL.GETV': {
      if (!command.key.valid) return refused(ANY_ERROR)
      const entry = live(world, command.key)
      if (entry === undefined) return [outcome(NIL, world)]
      const items = [bulk(entry.bytes), integerIn(entry.version.lo, entry.version.hi), integer(entry.flags), pttl(entry, context)]
      return [outcome({ kind: 'array', items: entry.counter ? [...items, integer(1)] : items }, world)]
    }
    case 'SET': {
      const { condition, expiry, junk } = command.options
      const expiryReadings = expiry === undefined || expiry === 'KEEPTTL' ? [undefined] : integerReadings(expiry.amount).map((n) => {
        const ms = n === null ? null : n * (expiry.unit === 'EX' ? 1000n : 1n)
        return ms !== null && ms > 0n && ms <= BigInt(MAX_TTL_MS) ? ms : null
      })
      const problems = (junk ? 1 : 0) + (!command.key.valid ? 1 : 0) + (command.value.length > MAX_VALUE_BYTES ? 1 : 0)
      return expiryReadings.flatMap((ms) => {
        if (ms === null) return refused(problems === 0 ? BAD_EXPIRY : ANY_ERROR)
        if (problems > 0) return refused(junk && problems === 1 ? SYNTAX : ANY_ERROR)
        const current = live(world, command.key)
        if ((condition === 'NX' && current) || (condition === 'XX' && !current)) return [outcome(NIL, world)]
        const ttl: Ttl = ms !== undefined ? ttlOf(ms, context.sentAt) : expiry === 'KEEPTTL' && current ? current.ttl : { kind: 'none' }
        return [outcome(simple('OK'), withEntry(world, command.key, { kind: 'value', bytes: command.value, flags: 0, ttl, version: clockVersion }))]
      })
    }
    case 'DEL': case 'EXISTS': case 'MGET': {
      const firstInvalid = command.keys.findIndex((k) => !k.valid)
      if (command.name !== 'DEL') {
        if (firstInvalid >= 0) return refused(ANY_ERROR)
        if (command.name === 'EXISTS') return [outcome(integer(command.keys.filter((k) => live(world, k)).length), world)]
        return [outcome({ kind: 'array', items: command.keys.map((k) => bulk(live(world, k)?.bytes ?? null)) }, world)]
      }
      let deleted = 0
      let next = world
      const applied: World[] = [world]
      for (const k of firstInvalid >= 0 ? command.keys.slice(0, firstInvalid) : command.keys) {
        if (live(next, k)) {
          deleted++
          next = withEntry(next, k, { kind: 'tombstone', version: clockVersion })
        }
        applied.push(next)
      }
      // A key refused part-way: the keys before it may have been deleted already (no rule says
      // DEL checks every key first; Redis has no key limit to compare with).
      if (firstInvalid >= 0) return [...new Set(applied)].map((w) => outcome(error(ANY_ERROR), w))
      return [outcome(integer(deleted), next)]
    }
    case 'MSET': {
      if (command.pairs.some(([k, v]) => !k.valid || v.length > MAX_VALUE_BYTES)) return refused(ANY_ERROR)
      let next = world
      for (const [k, v] of command.pairs) next = withEntry(next, k, { kind: 'value', bytes: v, flags: 0, ttl: { kind: 'none' }, version: clockVersion })
      return [outcome(simple('OK'), next)]
    }
    case 'INCR': case 'DECR': case 'INCRBY': case 'DECRBY': {
      if (!command.key.valid) return refused(ANY_ERROR)
      const current = live(world, command.key)
      const bases = current === undefined ? [0n] : integerReadings(current.bytes.toString('latin1'))
      const incremented = (base: bigint | null, delta: bigint): Outcome<World, Reply>[] => {
        if (base === null) return refused(NOT_INTEGER)
        const total = base + delta
        if (total > INT64_MAX || total < INT64_MIN) return refused(OVERFLOW)
        // A counter keeps the version of what it grew from (its epoch: see shard/counter-entry.ts),
        // a delete's or 1 for nothing, so that copies taking increments elsewhere merge with it.
        const epoch = world.get(keyOf(command.key))?.version ?? { lo: 1n, hi: 1n }
        const entry: Entry = { kind: 'value', bytes: Buffer.from(String(total)), flags: current?.flags ?? 0, ttl: current?.ttl ?? { kind: 'none' }, version: epoch, counter: true }
        return [outcome(integer(total), withEntry(world, command.key, entry))]
      }
      const amounts = 'amount' in command ? integerReadings(command.amount) : [1n]
      return amounts.flatMap((amount) => {
        if (amount === null) return refused(NOT_INTEGER)
        const delta = command.name.startsWith('DECR') ? -amount : amount
        // DECRBY of INT64_MIN negates past INT64_MAX: Redis calls that an overflow, whatever the key holds.
        if (delta > INT64_MAX) return refused(/^ERR (increment or )?decrement would overflow|^ERR value is not an integer/)
        return bases.flatMap((base) => incremented(base, delta))
      })
    }
    case 'EXPIRE': case 'PEXPIRE': {
      const unit = command.name === 'EXPIRE' ? 1000n : 1n
      return integerReadings(command.amount).flatMap((n) => {
        if (n === null) return refused(command.key.valid ? BAD_EXPIRY : ANY_ERROR)
        const ms = n * unit
        if (ms > BigInt(MAX_TTL_MS)) return refused(command.key.valid ? BAD_EXPIRY : ANY_ERROR)
        if (!command.key.valid) return refused(ANY_ERROR)
        // So negative that it leaves int64 as milliseconds: Redis refuses it, taking it is fine too.
        const alsoRefused = ms < -(2n ** 53n) ? [outcome(error(BAD_EXPIRY), world)] : []
        const current = live(world, command.key)
        if (current === undefined) return [outcome(integer(0), world), ...alsoRefused]
        if (ms <= 0n) return [outcome(integer(1), withEntry(world, command.key, { kind: 'tombstone', version: clockVersion })), ...alsoRefused]
        return [outcome(integer(1), withEntry(world, command.key, { kind: 'value', bytes: current.bytes, flags: current.flags, ttl: ttlOf(ms, context.sentAt), version: clockVersion }))]
      })
    }
    case 'SL.SETV': {
      const text = context.versionText!
      const pxReadings = command.px === undefined ? [undefined] : integerReadings(command.px).map((n) => (n !== null && n > 0n && n <= BigInt(MAX_TTL_MS) ? n : null))
      const flagsReading = command.flags === undefined ? 0n : strictInt64(command.flags)
      const flagsValid = flagsReading !== null && flagsReading >= 0n && flagsReading <= 0xffffffffn
      return versionReadings(command.version, text).flatMap((v) => pxReadings.flatMap((px) => {
        if (v === null || px === null || !flagsValid || !command.key.valid || command.value.length > MAX_VALUE_BYTES) return refused(ANY_ERROR)
        const current = world.get(keyOf(command.key))
        return newer(v, current).map((stored) => stored
          ? outcome(integer(1), withEntry(world, command.key, { kind: 'value', bytes: command.value, flags: Number(flagsReading), ttl: px === undefined ? { kind: 'none' } : ttlOf(px, context.sentAt), version: { lo: v, hi: v } }))
          : outcome(integer(0), world))
      }))
    }
    case 'SL.DELV': {
      const text = context.versionText!
      return versionReadings(command.version, text).flatMap((v) => {
        if (v === null || !command.key.valid) return refused(ANY_ERROR)
        const current = world.get(keyOf(command.key))
        return newer(v, current).map((applied) => applied
          ? outcome(integer(current?.kind === 'value' ? 1 : 0), withEntry(world, command.key, { kind: 'tombstone', version: { lo: v, hi: v } }))
          : outcome(integer(0), world))
      })
    }
  }
}

/** A version sent that the shard's clock may have taken (it takes none past its drift), for ClockBounds. */
export function possiblyTakenVersion(versionText: string | undefined): bigint | null {
  const v = versionText === undefined ? null : strictInt64(versionText)
  return v !== null && v > 0n && v < BigInt(Date.now() + VERSION_DRIFT_MS * 2) * LOGICAL_RANGE ? v : null
}

/** A reply that proves the shard took the command's version (a stored SL.SETV, a deleting SL.DELV). */
export function versionTaken(command: Command, reply: Reply): boolean {
  return (command.name === 'SL.SETV' || command.name === 'SL.DELV') && reply.kind === 'integer' && reply.value === 1n
}
