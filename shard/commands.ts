// The shard's RESP command table: each command's arity and handler, behaving as the Redis docs
// describe, plus shardline's own SL.* extension commands (versioned writes, flags).
import { CommandError, INT64_MAX_CHARS, NOT_INTEGER, SYNTAX, int64FromText, invalidExpireTime, negateDelta, toSeconds, ttlMsFromInt64 } from '../common/resp-arguments.ts'
import { REGION_NAME_PATTERN } from '../common/region.ts'
import { RespArgs } from '../common/resp-request-parser.ts'
import { bulkReplyBytes, type RespWriter } from '../common/resp-writer.ts'
import { ENTRY_HEADER_BYTES, entryFlags, entryIsCounter, entryValue, entryVersion } from './entry.ts'
import { DEFAULT_SCAN_COUNT, MAX_SCAN_COUNT, SCAN_PAGE_BYTES, type KeyScans } from './key-scan.ts'
import { receivedEntry } from './received-entry.ts'
import { VERSION_NOT_POSITIVE, type Store, type WriteOptions } from './store.ts'

export interface CommandLimits {
  maxKeyBytes: number
  maxValueBytes: number
  /** A client's unread replies pause its pipeline at this size; a bigger MGET reply is refused. */
  maxOutputBufferBytes: number
}

export interface CommandContext {
  store: Store
  /** SL.SCAN's open scans, shared by every connection. */
  scans: KeyScans
  writer: RespWriter
  limits: CommandLimits
  /** The INFO text for the requested sections (all when empty). */
  info(sections: string[]): string
  /** Extra CONFIG GET parameters the server knows about. */
  config(): Record<string, string>
  /** Close the connection once the replies so far are written. */
  quit(): void
  /** SL.SYNC: the connection becomes a replication feed (replication-source.ts) from here on. */
  replicate(args: Buffer[]): void
  /** AUTH [user] password: grants this connection what the password allows, or throws the refusal. */
  authenticate(user: string | null, password: string): void
  /** False while the shard wants AUTH and this connection has not passed it. */
  authenticated(): boolean
  /** HELLO's fields after proto: the connection's id, the shard's mode and role. */
  greeting(): Array<[string, string | number]>
  /** Runs apply (SL.REGION.APPLY's write) so that its log ops are marked as another region's, never shipped back. */
  fromRegion(apply: () => void): void
}

// An error reply; the connection stays open. (The store's StoreError is answered the same way.)
export { CommandError }

export interface CommandSpec {
  /** Lower-case name, as metrics and error replies show it. */
  name: string
  /** Its place in the command table: a dense index for per-command state. */
  index: number
  /** Redis convention: n = exactly n arguments (name included), -n = at least n. */
  arity: number
  /** Answered while the shard warms up; every other command gets -LOADING until it is ready. */
  whileLoading?: boolean
  run(ctx: CommandContext, args: RespArgs): void
}


const COMMAND_TABLE: Array<[string, Omit<CommandSpec, 'name' | 'index'>]> = [
  ['get', { arity: 2, run: (ctx, args) => replyValue(ctx, ctx.store.get(key(ctx, args, 1))) }],
  ['set', { arity: -3, run: runSet }],
  ['del', { arity: -2, run: (ctx, args) => ctx.writer.integer(countKeys(ctx, args, (k) => ctx.store.delete(k))) }],
  ['exists', { arity: -2, run: (ctx, args) => ctx.writer.integer(countKeys(ctx, args, (k) => ctx.store.peek(k) !== undefined)) }],
  ['mget', { arity: -2, run: runMget }],
  ['mset', { arity: -3, run: runMset }],
  ['incr', { arity: 2, run: (ctx, args) => incrementBy(ctx, key(ctx, args, 1), 1n) }],
  ['decr', { arity: 2, run: (ctx, args) => incrementBy(ctx, key(ctx, args, 1), -1n) }],
  ['incrby', { arity: 3, run: (ctx, args) => incrementBy(ctx, key(ctx, args, 1), parseInt64(args, 2)) }],
  ['decrby', { arity: 3, run: (ctx, args) => incrementBy(ctx, key(ctx, args, 1), negateDelta(parseInt64(args, 2))) }],
  ['expire', { arity: 3, run: (ctx, args) => ctx.writer.integer(ctx.store.expire(key(ctx, args, 1), parseTtlMs(args, 2, 1000n, 'expire')) ? 1 : 0) }],
  ['pexpire', { arity: 3, run: (ctx, args) => ctx.writer.integer(ctx.store.expire(key(ctx, args, 1), parseTtlMs(args, 2, 1n, 'pexpire')) ? 1 : 0) }],
  ['ttl', { arity: 2, run: (ctx, args) => ctx.writer.integer(toSeconds(ctx.store.remainingTtl(key(ctx, args, 1)))) }],
  ['pttl', { arity: 2, run: (ctx, args) => ctx.writer.integer(ctx.store.remainingTtl(key(ctx, args, 1))) }],
  ['ping', { arity: -1, run: runPing }],
  ['echo', { arity: 2, run: (ctx, args) => ctx.writer.bulk(args.buffer(1)) }],
  ['info', { arity: -1, whileLoading: true, run: (ctx, args) => ctx.writer.bulkText(ctx.info(lowerCaseFrom(args, 1))) }],
  ['dbsize', { arity: 1, run: (ctx) => ctx.writer.integer(ctx.store.size) }],
  ['flushall', { arity: -1, run: runFlush }],
  ['flushdb', { arity: -1, run: runFlush }],
  ['quit', { arity: -1, whileLoading: true, run: (ctx) => { ctx.writer.simple('OK'); ctx.quit() } }],
  ['select', { arity: 2, run: runSelect }],
  ['config', { arity: -2, whileLoading: true, run: runConfig }],
  ['client', { arity: -2, whileLoading: true, run: (ctx) => ctx.writer.simple('OK') }],
  ['command', { arity: -1, whileLoading: true, run: (ctx) => ctx.writer.arrayHeader(0) }],
  ['auth', { arity: -2, whileLoading: true, run: runAuth }],
  ['hello', { arity: -1, whileLoading: true, run: runHello }],
  ['sl.setv', { arity: -4, run: runSetVersioned }],
  ['sl.getv', { arity: 2, run: runGetVersioned }],
  ['sl.delv', { arity: 3, run: runDeleteVersioned }],
  ['sl.scan', { arity: -2, run: runScan }],
  ['sl.putv', { arity: 3, run: runPutVersioned }],
  ['sl.drop', { arity: 3, run: (ctx, args) => ctx.writer.integer(ctx.store.dropIfNotNewer(key(ctx, args, 1), parseVersion(args, 2)) ? 1 : 0) }],
  ['sl.sync', { arity: -3, whileLoading: true, run: (ctx, args) => ctx.replicate(args.toArray()) }],
  ['sl.digest', { arity: 1, whileLoading: true, run: runDigest }],
  ['sl.region.apply', { arity: -4, run: runRegionApply }],
  // A restarted shard answers at once, warming up or not: its peers must learn it may have lost data.
  ['sl.region.id', { arity: 1, whileLoading: true, run: (ctx) => ctx.writer.bulkLatin1(ctx.store.writerId) }],
]

export const COMMAND_SPECS: readonly CommandSpec[] = COMMAND_TABLE.map(([name, spec], index) => ({ name, index, ...spec }))

// Commands by the length of their name and its first letter, so that finding one reads the
// request's bytes (any letter case) without making a string of them.
const byNameStart: CommandSpec[][] = []
const nameStartSlot = (length: number, firstByte: number) => length * 32 + (firstByte & 0x1f)
for (const spec of COMMAND_SPECS) (byNameStart[nameStartSlot(spec.name.length, spec.name.charCodeAt(0))] ??= []).push(spec)

/** The command args[0] names, in any letter case; undefined for an unknown one. */
export function findCommand(args: RespArgs): CommandSpec | undefined {
  const length = args.byteLength(0)
  if (length === 0) return undefined
  const candidates = byNameStart[nameStartSlot(length, args.byteAt(0, 0))]
  if (candidates === undefined) return undefined
  for (const spec of candidates) if (args.is(0, spec.name)) return spec
  return undefined
}

function key(ctx: CommandContext, args: RespArgs, i: number): string {
  const length = args.byteLength(i)
  if (length > ctx.limits.maxKeyBytes) throw new CommandError(`ERR key too long (${length} bytes, limit ${ctx.limits.maxKeyBytes})`)
  if (length === 0) throw new CommandError('ERR empty key')
  return args.latin1(i)
}

function value(ctx: CommandContext, args: RespArgs, i: number): Buffer {
  checkValueBytes(ctx, args.byteLength(i))
  return args.buffer(i)
}

function checkValueBytes(ctx: CommandContext, length: number): void {
  if (length > ctx.limits.maxValueBytes) throw new CommandError(`ERR value too large (${length} bytes, limit ${ctx.limits.maxValueBytes})`)
}

// Arguments from the from-th on, as lower-case text (INFO's sections).
function lowerCaseFrom(args: RespArgs, from: number): string[] {
  const texts: string[] = []
  for (let i = from; i < args.count; i++) texts.push(args.latin1(i).toLowerCase())
  return texts
}

function replyValue(ctx: CommandContext, packed: string | undefined): void {
  if (packed === undefined) ctx.writer.nullBulk()
  else ctx.writer.bulkLatin1(entryValue(packed))
}

function countKeys(ctx: CommandContext, args: RespArgs, predicate: (key: string) => boolean): number {
  let count = 0
  for (let i = 1; i < args.count; i++) if (predicate(key(ctx, args, i))) count++
  return count
}

function runSet(ctx: CommandContext, args: RespArgs): void {
  const options = parseWriteOptions(args, 3, 'set')
  const result = ctx.store.set(key(ctx, args, 1), value(ctx, args, 2), options)
  if (result === 'condition-failed') ctx.writer.nullBulk()
  else ctx.writer.simple('OK')
}

/** Redis's reply to a write refused under its memory limit. */
const OUT_OF_MEMORY = "OOM command not allowed when used memory > 'maxmemory'."

/** A plain write's options, shared: nobody changes them. */
const NO_OPTIONS: WriteOptions = Object.freeze({})

// SET's options after key and value: NX | XX, EX s | PX ms | KEEPTTL. SL.SETV adds FLAGS n.
function parseWriteOptions(args: RespArgs, from: number, command: string, allowFlags = false): WriteOptions {
  if (args.count === from) return NO_OPTIONS
  const options: WriteOptions = {}
  let expirySet = false
  for (let i = from; i < args.count; i++) {
    const option = args.latin1(i).toLowerCase()
    if ((option === 'nx' || option === 'xx') && options.condition === undefined) {
      options.condition = option
    } else if ((option === 'ex' || option === 'px') && !expirySet && i + 1 < args.count) {
      options.ttlMs = parseTtlMs(args, ++i, option === 'ex' ? 1000n : 1n, command)
      if (options.ttlMs <= 0) throw invalidExpireTime(command)
      expirySet = true
    } else if (option === 'keepttl' && !expirySet) {
      options.keepTtl = true
      expirySet = true
    } else if (allowFlags && option === 'flags' && i + 1 < args.count) {
      const flags = parseInt64(args, ++i)
      if (flags < 0n || flags > 0xffffffffn) throw new CommandError(NOT_INTEGER)
      options.flags = Number(flags)
    } else {
      throw new CommandError(SYNTAX)
    }
  }
  return options
}

// The reply is sized before a byte of it is written: one MGET could otherwise build a reply of
// maxArrayLength values at once, past any output limit checked between commands.
function runMget(ctx: CommandContext, args: RespArgs): void {
  const keys: string[] = []
  for (let i = 1; i < args.count; i++) keys.push(key(ctx, args, i))
  const values = keys.map((k) => ctx.store.get(k))
  let bytes = `*${keys.length}\r\n`.length
  for (const packed of values) bytes += bulkReplyBytes(packed === undefined ? -1 : packed.length - ENTRY_HEADER_BYTES)
  const limit = ctx.limits.maxOutputBufferBytes
  if (bytes > limit) throw new CommandError(`ERR reply too large (${bytes} bytes, limit ${limit}): ask for fewer keys`)
  ctx.writer.arrayHeader(keys.length)
  for (const packed of values) replyValue(ctx, packed)
}

function runMset(ctx: CommandContext, args: RespArgs): void {
  if (args.count % 2 === 0) throw new CommandError("ERR wrong number of arguments for 'mset' command")
  // Validate every pair first: MSET is all or nothing.
  const pairs: [string, Buffer][] = []
  for (let i = 1; i < args.count; i += 2) pairs.push([key(ctx, args, i), value(ctx, args, i + 1)])
  for (const [k, value] of pairs) ctx.store.set(k, value)
  ctx.writer.simple('OK')
}

function incrementBy(ctx: CommandContext, key: string, delta: bigint): void {
  ctx.writer.integer(ctx.store.incrBy(key, delta))
}

function runPing(ctx: CommandContext, args: RespArgs): void {
  if (args.count > 2) throw new CommandError("ERR wrong number of arguments for 'ping' command")
  if (args.count === 2) ctx.writer.bulk(args.buffer(1))
  else ctx.writer.simple('PONG')
}

function runFlush(ctx: CommandContext, args: RespArgs): void {
  const mode = args.count > 1 ? args.latin1(1).toLowerCase() : undefined
  if (args.count > 2 || (mode !== undefined && mode !== 'async' && mode !== 'sync')) throw new CommandError(SYNTAX)
  ctx.store.clear()
  ctx.writer.simple('OK')
}

// AUTH password | AUTH user password. The password is read as UTF-8, as it was written in the config.
function runAuth(ctx: CommandContext, args: RespArgs): void {
  if (args.count > 3) throw new CommandError(SYNTAX)
  ctx.authenticate(args.count === 3 ? args.latin1(1) : null, args.buffer(args.count - 1).toString('utf8'))
  ctx.writer.simple('OK')
}

const HELLO_NOAUTH = 'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time'

// HELLO [protover [AUTH user password] [SETNAME name]]: shardline speaks RESP2 only, so the reply is
// Redis's map as a flat array (RESP2's form of it) and protover 3 is refused.
function runHello(ctx: CommandContext, args: RespArgs): void {
  if (args.count > 1) {
    const version = parseInt64(args, 1)
    if (version !== 2n) throw new CommandError('NOPROTO unsupported protocol version')
  }
  for (let i = 2; i < args.count; i++) {
    const option = args.latin1(i).toLowerCase()
    if (option === 'auth' && i + 2 < args.count) {
      ctx.authenticate(args.latin1(i + 1), args.buffer(i + 2).toString('utf8'))
      i += 2
    } else if (option === 'setname' && i + 1 < args.count) {
      i++
    } else {
      throw new CommandError(`ERR Syntax error in HELLO option '${option.slice(0, 64)}'`)
    }
  }
  if (!ctx.authenticated()) throw new CommandError(HELLO_NOAUTH)
  const fields: Array<[string, string | number]> = [['server', 'redis'], ['version', '7.0.0'], ['proto', 2], ...ctx.greeting()]
  ctx.writer.arrayHeader(fields.length * 2 + 2)
  for (const [name, value] of fields) {
    ctx.writer.bulkText(name)
    if (typeof value === 'number') ctx.writer.integer(value)
    else ctx.writer.bulkText(value)
  }
  ctx.writer.bulkText('modules')
  ctx.writer.arrayHeader(0)
}

function runSelect(ctx: CommandContext, args: RespArgs): void {
  if (parseInt64(args, 1) !== 0n) throw new CommandError('ERR DB index is out of range (shardline has database 0 only)')
  ctx.writer.simple('OK')
}

// CONFIG GET answers the parameters a client may probe (redis-benchmark asks for save and
// appendonly); CONFIG SET is refused: a shard's settings come from its flags or config file.
function runConfig(ctx: CommandContext, args: RespArgs): void {
  const sub = args.latin1(1).toLowerCase()
  if (sub !== 'get' || args.count !== 3) throw new CommandError(`ERR CONFIG ${sub.toUpperCase()} is not supported: shardline reads its settings from flags or --config`)
  const pattern = globToRegExp(args.latin1(2).toLowerCase())
  const params = { save: '', appendonly: 'no', ...ctx.config() }
  const matches = Object.entries(params).filter(([name]) => pattern.test(name))
  ctx.writer.arrayHeader(matches.length * 2)
  for (const [name, value] of matches) {
    ctx.writer.bulkText(name)
    ctx.writer.bulkText(value)
  }
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  return new RegExp(`^${escaped}$`)
}

// SL.SETV key value version [PX ms] [FLAGS n]: stores only if version is newer than the stored
// one (last writer wins). Replies :1 when stored, :0 when the stored version is as new or newer.
function runSetVersioned(ctx: CommandContext, args: RespArgs): void {
  const version = parseVersion(args, 3)
  const options = parseWriteOptions(args, 4, 'sl.setv', true)
  if (options.condition || options.keepTtl) throw new CommandError(SYNTAX)
  const result = ctx.store.set(key(ctx, args, 1), value(ctx, args, 2), { ...options, version })
  ctx.writer.integer(result === 'stored' ? 1 : 0)
}

// SL.DELV key version: deletes with a version, leaving a tombstone so that no older write can
// bring the key back. :1 when a live value was deleted, :0 otherwise.
function runDeleteVersioned(ctx: CommandContext, args: RespArgs): void {
  const version = parseVersion(args, 2)
  ctx.writer.integer(ctx.store.deleteVersioned(key(ctx, args, 1), version) === 'deleted' ? 1 : 0)
}

// SL.SCAN cursor [COUNT n]: [next cursor, [key, entry, key, entry, …]], walking a snapshot of the
// keys taken at cursor 0 (key-scan.ts); COUNT's errors are Redis's for SCAN, plus a cap.
function runScan(ctx: CommandContext, args: RespArgs): void {
  if (args.count !== 2 && (args.count !== 4 || !args.is(2, 'count'))) throw new CommandError(SYNTAX)
  let count = DEFAULT_SCAN_COUNT
  if (args.count === 4) {
    const asked = parseInt64(args, 3)
    if (asked < 1n) throw new CommandError(SYNTAX)
    if (asked > BigInt(MAX_SCAN_COUNT)) throw new CommandError(NOT_INTEGER)
    count = Number(asked)
  }
  // A longer argument is no cursor: it is not read as text (the scan refuses it as unknown).
  const cursor = args.byteLength(1) <= INT64_MAX_CHARS ? args.latin1(1) : ''
  const page = ctx.scans.page(cursor, count, Math.min(SCAN_PAGE_BYTES, ctx.limits.maxOutputBufferBytes))
  ctx.writer.arrayHeader(2)
  ctx.writer.bulkText(page.cursor)
  ctx.writer.arrayHeader(page.keysAndEntries.length)
  for (const item of page.keysAndEntries) ctx.writer.bulkLatin1(item)
}

// SL.PUTV key entry: stores an entry as SL.SCAN gives it unless the stored one is as new or newer
// (two copies of one counter epoch merge). :1 stored, :0 kept. An entry the byte budget refuses is
// an error, not :0: a mover that took :0 for "already there" would then drop the only copy.
function runPutVersioned(ctx: CommandContext, args: RespArgs): void {
  const k = key(ctx, args, 1)
  checkValueBytes(ctx, args.byteLength(2) - ENTRY_HEADER_BYTES)
  const result = ctx.store.restore(k, receivedEntry(args.latin1(2), Date.now()))
  if (result === 'rejected') throw new CommandError(OUT_OF_MEMORY)
  ctx.writer.integer(result === 'stored' ? 1 : 0)
}

/** The writes another region sends (common/region.ts REGION_OPS), each run by its own command's handler. */
const REGION_OP_HANDLERS: Array<[name: string, run: CommandSpec['run'], arity: number]> = [
  ['sl.setv', runSetVersioned, -4],
  ['sl.delv', runDeleteVersioned, 3],
  // A counter's packed entry, merged per writer: exactly SL.PUTV.
  ['sl.pute', runPutVersioned, 3],
  ['sl.putv', runPutVersioned, 3],
]
const REGION_ORIGIN = new RegExp(REGION_NAME_PATTERN)
/** The op's own arguments, read in place (reused: commands run one at a time). */
const regionOpArgs = new RespArgs()

// SL.REGION.APPLY <origin region> <op> <key> <args…>: a peer region's write, applied if newer like
// any versioned write, its log ops marked foreign so that no region gets it back.
function runRegionApply(ctx: CommandContext, args: RespArgs): void {
  if (args.byteLength(1) > 32 || !REGION_ORIGIN.test(args.latin1(1))) throw new CommandError('ERR invalid origin region name')
  const handler = REGION_OP_HANDLERS.find(([name]) => args.is(2, name))
  if (handler === undefined) throw new CommandError(`ERR SL.REGION.APPLY takes ${REGION_OP_HANDLERS.map(([name]) => name.toUpperCase()).join(', ')}, not '${args.latin1(2).slice(0, 32)}'`)
  const [name, run, arity] = handler
  const count = args.count - 2
  if (arity > 0 ? count !== arity : count < -arity) throw new CommandError(`ERR wrong number of arguments for '${name}' in SL.REGION.APPLY`)
  for (let i = 2; i < args.count; i++) regionOpArgs.add(args.buffer(i), 0, args.byteLength(i))
  try {
    ctx.fromRegion(() => run(ctx, regionOpArgs))
  } finally {
    regionOpArgs.clear()
  }
}

// SL.DIGEST: [live keys, sha1 over every key, version, flags and value]; equal digests on a
// primary and its replica mean they hold the same data.
function runDigest(ctx: CommandContext): void {
  const { items, sha1 } = ctx.store.digest()
  ctx.writer.arrayHeader(2)
  ctx.writer.integer(items)
  ctx.writer.bulkText(sha1)
}

// SL.GETV key: [value, version, flags, pttl] or a null reply for a missing key; a counter adds a
// fifth element, 1, so that a router moving keys does not copy its sum as a plain value.
function runGetVersioned(ctx: CommandContext, args: RespArgs): void {
  const k = key(ctx, args, 1)
  const packed = ctx.store.get(k)
  if (packed === undefined) {
    ctx.writer.nullBulk()
    return
  }
  const counter = entryIsCounter(packed)
  ctx.writer.arrayHeader(counter ? 5 : 4)
  ctx.writer.bulkLatin1(entryValue(packed))
  ctx.writer.integer(entryVersion(packed))
  ctx.writer.integer(entryFlags(packed))
  ctx.writer.integer(ctx.store.remainingTtlOf(packed))
  if (counter) ctx.writer.integer(1)
}

/** Argument i as a signed 64-bit integer in Redis's syntax (a longer argument is never read as text). */
function parseInt64(args: RespArgs, i: number): bigint {
  return int64FromText(args.byteLength(i) <= INT64_MAX_CHARS ? args.latin1(i) : '')
}

// A version's range against the clock is the store's to check (it refuses one too far ahead).
function parseVersion(args: RespArgs, i: number): number {
  const version = parseInt64(args, i)
  if (version <= 0n) throw new CommandError(VERSION_NOT_POSITIVE)
  return Number(version)
}

function parseTtlMs(args: RespArgs, i: number, unitMs: bigint, command: string): number {
  return ttlMsFromInt64(parseInt64(args, i), unitMs, command)
}
