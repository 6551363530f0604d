// The RESP front's commands: each one's arity, the permission it needs, and how its arguments become
// Ops for the route tree (checked against the config's limits first) and its results a reply, in
// Redis's words; AUTH and HELLO's AUTH name the connection's tenant (or, as user region, a peer
// region's shard, which runs SL.REGION.*: region-receiver.ts).
import type { HybridLogicalClock } from '../common/hlc.ts'
import { CommandError, INT64_MAX_CHARS, SYNTAX, int64FromText, invalidExpireTime, negateDelta, printable, toSeconds, ttlMsFromInt64, unknownCommandMessage } from '../common/resp-arguments.ts'
import type { Permission, RouterConfig } from './config.ts'
import type { RegionReceiver } from './region-receiver.ts'
import { ErrorReply, OK, Status, type Reply } from './resp-reply.ts'
import type { RouteTree } from './route-tree.ts'
import type { Tenant } from './tenants.ts'
import type { Op, OpResult } from './routes/route.ts'

/** What a command may use besides its arguments: the tree (read once per command) and its connection. */
export interface CommandContext {
  /** The tree's config; ops go through route. */
  tree: RouteTree
  /** Who the connection's ops are for; undefined when the router has no tenants. */
  tenant: Tenant | undefined
  /** Routes an op through the tree in the connection's order for its key (resp-key-order.ts). */
  route(op: Op): Promise<OpResult>
  /** Answers SL.REGION.*. */
  regions: RegionReceiver
  clock: HybridLogicalClock
  /** The connection's id (HELLO shows it). */
  clientId: number
  /** The INFO text. */
  info(): string
  /** Close the connection once the replies so far are written. */
  quit(): void
  /**
   * Names the connection's tenant: the one holding token (and named user, unless user is null or
   * "default"); or, for user region, makes it a peer region's connection. False for none.
   */
  authenticate(user: string | null, token: string): boolean
  /** The router has no tenants, or the connection has named its own (or is a peer region's). */
  authenticated(): boolean
}

export interface CommandSpec {
  /** Lower-case name, as metrics and error replies show it. */
  name: string
  /** Redis convention: n = exactly n arguments (name included), -n = at least n. */
  arity: number
  /** What a tenant needs to run it; absent: a connection command, open to every authenticated client. */
  permission?: Permission
  /** A multi-key command's arguments per key (1, or 2 for key-value pairs): it costs a rate-limit token per key. */
  keyStep?: number
  /** A peer region's command (SL.REGION.*): who may run it is region-receiver.ts's to say. */
  region?: true
  run(ctx: CommandContext, args: Buffer[]): Reply | Promise<Reply>
}

/** What answers before AUTH when the router has tenants. */
export const BEFORE_AUTH: ReadonlySet<string> = new Set(['auth', 'hello', 'ping', 'quit'])

export const NOAUTH = 'NOAUTH Authentication required.'
export const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.'

const PONG = new Status('PONG')
/** The Redis version the front answers as, for clients that look at it before using a command. */
export const REDIS_VERSION = '7.0.0'

const COMMAND_TABLE: Array<[string, Omit<CommandSpec, 'name'>]> = [
  ['get', { arity: 2, permission: 'read', run: (ctx, args) => route(ctx, { kind: 'get', key: key(ctx, args[1]) }, valueReply) }],
  ['set', { arity: -3, permission: 'write', run: runSet }],
  ['del', { arity: -2, permission: 'write', keyStep: 1, run: (ctx, args) => sum(ctx, keys(ctx, args, 1), (k) => ({ kind: 'delete', key: k, version: ctx.clock.next() }), (r) => r.kind === 'delete' && r.deleted) }],
  ['exists', { arity: -2, permission: 'read', keyStep: 1, run: (ctx, args) => sum(ctx, keys(ctx, args, 1), (k) => ({ kind: 'ttl', key: k }), (r) => r.kind === 'ttl' && r.ttlMs !== -2) }],
  ['mget', { arity: -2, permission: 'read', keyStep: 1, run: runMget }],
  ['mset', { arity: -3, permission: 'write', keyStep: 2, run: runMset }],
  ['incr', { arity: 2, permission: 'write', run: (ctx, args) => increment(ctx, args[1], 1n) }],
  ['decr', { arity: 2, permission: 'write', run: (ctx, args) => increment(ctx, args[1], -1n) }],
  ['incrby', { arity: 3, permission: 'write', run: (ctx, args) => increment(ctx, args[1], parseInt64(args[2])) }],
  ['decrby', { arity: 3, permission: 'write', run: (ctx, args) => increment(ctx, args[1], negateDelta(parseInt64(args[2]))) }],
  ['expire', { arity: 3, permission: 'write', run: (ctx, args) => expire(ctx, args, 1000n, 'expire') }],
  ['pexpire', { arity: 3, permission: 'write', run: (ctx, args) => expire(ctx, args, 1n, 'pexpire') }],
  ['ttl', { arity: 2, permission: 'read', run: (ctx, args) => route(ctx, { kind: 'ttl', key: key(ctx, args[1]) }, (r) => (r.kind === 'ttl' ? toSeconds(r.ttlMs) : -2)) }],
  ['pttl', { arity: 2, permission: 'read', run: (ctx, args) => route(ctx, { kind: 'ttl', key: key(ctx, args[1]) }, (r) => (r.kind === 'ttl' ? r.ttlMs : -2)) }],
  ['auth', { arity: -2, run: runAuth }],
  ['ping', { arity: -1, run: runPing }],
  ['echo', { arity: 2, run: (_ctx, args) => args[1] }],
  ['info', { arity: -1, run: (ctx) => ctx.info() }],
  ['quit', { arity: -1, run: (ctx) => { ctx.quit(); return OK } }],
  ['hello', { arity: -1, run: runHello }],
  ['select', { arity: 2, run: runSelect }],
  // Connection names and library info are accepted and not kept.
  ['client', { arity: -2, run: () => OK }],
  // redis-cli asks for COMMAND DOCS to show hints; it does without them.
  ['command', { arity: -1, run: () => [] }],
  ['config', { arity: -2, run: runConfig }],
  ['sl.region.hello', { arity: 4, region: true, run: (ctx, args) => ctx.regions.hello(ctx, args) }],
  ['sl.region.apply', { arity: -6, region: true, run: (ctx, args) => ctx.regions.applyOp(ctx, args) }],
]

/** Commands by name, lower- and upper-case, so the usual spellings need no case folding. */
export const COMMANDS = new Map<string, CommandSpec>(
  COMMAND_TABLE.flatMap(([name, spec]) => [[name, { name, ...spec }], [name.toUpperCase(), { name, ...spec }]]),
)

export function findCommand(raw: Buffer): CommandSpec | undefined {
  const name = raw.toString('latin1')
  return COMMANDS.get(name) ?? COMMANDS.get(name.toLowerCase())
}

/** Redis's reply to a command it does not know. */
export function unknownCommand(args: Buffer[]): ErrorReply {
  return new ErrorReply(unknownCommandMessage(args))
}

export function wrongArity(name: string): ErrorReply {
  return new ErrorReply(`ERR wrong number of arguments for '${name}' command`)
}

function route(ctx: CommandContext, op: Op, toReply: (result: OpResult) => Reply): Promise<Reply> {
  return ctx.route(op).then(toReply)
}

function valueReply(result: OpResult): Reply {
  return result.kind === 'get' && result.found ? result.value : null
}

/**
 * A key in the byte form the route tree uses (a latin1 string of its bytes). Control bytes are
 * refused as by the HTTP front: derived keys (hot copies, sub-counters) hold a NUL, so no client
 * key may.
 */
function key(ctx: CommandContext, raw: Buffer): string {
  const { maxKeyBytes } = ctx.tree.config.limits
  if (raw.length === 0) throw new CommandError('ERR invalid key: empty')
  if (raw.length > maxKeyBytes) throw new CommandError(`ERR invalid key: ${raw.length} bytes, the limit is ${maxKeyBytes} (limits.maxKeyBytes)`)
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] < 0x20 || raw[i] === 0x7f) throw new CommandError('ERR invalid key: control characters are not allowed')
  }
  return raw.toString('latin1')
}

/** The keys of a multi-key command: at most limits.maxBatchOps, each checked before any is sent. */
function keys(ctx: CommandContext, args: Buffer[], step: number): string[] {
  const count = Math.ceil((args.length - 1) / step)
  checkFanOut(ctx.tree.config.limits, count)
  const found: string[] = []
  for (let i = 1; i < args.length; i += step) found.push(key(ctx, args[i]))
  return found
}

function checkFanOut(limits: RouterConfig['limits'], count: number): void {
  if (count > limits.maxBatchOps) throw new CommandError(`ERR too many keys: ${count}, the limit is ${limits.maxBatchOps} (limits.maxBatchOps)`)
}

function value(ctx: CommandContext, raw: Buffer): Buffer {
  const { maxValueBytes } = ctx.tree.config.limits
  if (raw.length > maxValueBytes) throw new CommandError(`ERR value too large: ${raw.length} bytes, the limit is ${maxValueBytes} (limits.maxValueBytes)`)
  return raw
}

// DEL and EXISTS: one op per key, all at once; the reply counts the results that match.
async function sum(ctx: CommandContext, keyList: string[], toOp: (key: string) => Op, counts: (result: OpResult) => boolean): Promise<Reply> {
  const results = await Promise.all(keyList.map((k) => ctx.route(toOp(k))))
  return results.reduce((count, result) => count + (counts(result) ? 1 : 0), 0)
}

// SET key value [NX|XX] [EX s|PX ms|KEEPTTL]. Without NX, XX or KEEPTTL it is a versioned write,
// safe to repeat on a replica; with one, the shard's plain SET (see Op 'set').
function runSet(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  const op: Extract<Op, { kind: 'set' }> = { kind: 'set', key: key(ctx, args[1]), value: value(ctx, args[2]), flags: 0, version: 0 }
  let expirySet = false
  for (let i = 3; i < args.length; i++) {
    const option = args[i].toString('latin1').toLowerCase()
    if ((option === 'nx' || option === 'xx') && op.condition === undefined) {
      op.condition = option
    } else if ((option === 'ex' || option === 'px') && !expirySet && i + 1 < args.length) {
      op.ttlMs = parseTtlMs(args[++i], option === 'ex' ? 1000n : 1n, 'set')
      if (op.ttlMs <= 0) throw invalidExpireTime('set')
      expirySet = true
    } else if (option === 'keepttl' && !expirySet) {
      op.keepTtl = true
      expirySet = true
    } else {
      throw new CommandError(SYNTAX)
    }
  }
  op.version = ctx.clock.next()
  return route(ctx, op, (result) => (result.kind === 'set' && (result.stored || op.condition === undefined) ? OK : null))
}

// Every value of an MGET is held until all have come: the reply is refused, as a batch's is,
// once the values passed limits.maxBatchResponseBytes.
async function runMget(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  const keyList = keys(ctx, args, 1)
  const { maxBatchResponseBytes } = ctx.tree.config.limits
  let bytes = 0
  const values = await Promise.all(keyList.map((k) => ctx.route({ kind: 'get', key: k }).then((result) => {
    const found = valueReply(result)
    if (found !== null) bytes += (found as Buffer).length
    return found
  })))
  if (bytes > maxBatchResponseBytes) return new ErrorReply(`ERR reply too large: ${bytes} bytes of values, the limit is ${maxBatchResponseBytes} (limits.maxBatchResponseBytes): ask for fewer keys`, 'response_too_large')
  return values
}

// Every pair is checked before any is sent. Unlike Redis's, an MSET that fails part way (a shard
// down) may have stored some pairs: the reply is the first failure.
async function runMset(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  if (args.length % 2 === 0) throw new CommandError(wrongArity('mset').message)
  const keyList = keys(ctx, args, 2)
  const ops: Op[] = keyList.map((k, index) => ({ kind: 'set', key: k, value: value(ctx, args[2 + index * 2]), flags: 0, version: ctx.clock.next() }))
  await Promise.all(ops.map((op) => ctx.route(op)))
  return OK
}

// A hot counter's increment is batched with others into a sub-counter and gives no new total:
// the reply then is the counter's total read right after, which includes this increment.
async function increment(ctx: CommandContext, rawKey: Buffer, by: bigint): Promise<Reply> {
  const k = key(ctx, rawKey)
  const result = await ctx.route({ kind: 'incr', key: k, by })
  if (result.kind === 'incr' && result.value !== null) return result.value
  const total = await ctx.route({ kind: 'counter', key: k })
  return total.kind === 'counter' ? total.value : 0n
}

function expire(ctx: CommandContext, args: Buffer[], unitMs: bigint, command: string): Promise<Reply> {
  const k = key(ctx, args[1])
  // Zero and below delete the key, as in Redis.
  const ttlMs = Math.max(0, parseTtlMs(args[2], unitMs, command))
  return route(ctx, { kind: 'expire', key: k, ttlMs }, (result) => (result.kind === 'expire' && result.applied ? 1 : 0))
}

function runPing(_ctx: CommandContext, args: Buffer[]): Reply {
  if (args.length > 2) throw new CommandError(wrongArity('ping').message)
  return args.length === 2 ? args[1] : PONG
}

function runSelect(_ctx: CommandContext, args: Buffer[]): Reply {
  if (parseInt64(args[1]) !== 0n) throw new CommandError('ERR DB index is out of range (shardline has database 0 only)')
  return OK
}

// AUTH <token> or AUTH <tenant> <token>.
function runAuth(ctx: CommandContext, args: Buffer[]): Reply {
  if (args.length > 3) throw new CommandError(SYNTAX)
  const user = args.length === 3 ? args[1].toString('utf8') : null
  if (!checksCredentials(ctx, user)) throw new CommandError('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?')
  return ctx.authenticate(user, args.at(-1)!.toString('utf8')) ? OK : new ErrorReply(WRONGPASS, 'wrongpass')
}

/** The router has tenants, or user is the region's (with region passwords): a credential is checked, not refused as needless. */
function checksCredentials(ctx: CommandContext, user: string | null): boolean {
  return !ctx.tree.access.open || ctx.tree.regionAccess.takesAuth(user)
}

// HELLO [protover [AUTH tenant token] [SETNAME name]]: RESP2 only, its map as a flat array as Redis
// sends it in RESP2. Its AUTH counts whatever the version, so a client asking for RESP3 with its
// credentials is authenticated when it falls back to RESP2.
function runHello(ctx: CommandContext, args: Buffer[]): Reply {
  let credentials: { user: string; token: string } | null = null
  if (args.length > 1) {
    const text = args[1].length <= 20 ? args[1].toString('latin1') : ''
    if (!/^-?\d+$/.test(text)) throw new CommandError('ERR Protocol version is not an integer or out of range')
    for (let i = 2; i < args.length; i++) {
      const option = args[i].toString('latin1').toLowerCase()
      if (option === 'setname' && i + 1 < args.length) i++
      else if (option === 'auth' && i + 2 < args.length) credentials = { user: args[++i].toString('utf8'), token: args[++i].toString('utf8') }
      else throw new CommandError(`ERR Syntax error in HELLO option '${printable(args[i])}'`)
    }
    if (credentials && checksCredentials(ctx, credentials.user) && !ctx.authenticate(credentials.user, credentials.token)) return new ErrorReply(WRONGPASS, 'wrongpass')
    if (text !== '2') return new ErrorReply('NOPROTO sorry, this protocol version is not supported')
  }
  if (credentials === null && !ctx.authenticated()) return new ErrorReply('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time', 'noauth')
  return ['server', 'redis', 'version', REDIS_VERSION, 'proto', 2, 'id', ctx.clientId, 'mode', 'standalone', 'role', 'master', 'modules', []]
}

// CONFIG GET for the parameters clients probe (redis-benchmark asks for save and appendonly).
const CONFIG_PARAMETERS: Record<string, string> = { save: '', appendonly: 'no' }

function runConfig(_ctx: CommandContext, args: Buffer[]): Reply {
  const sub = args[1].toString('latin1').toLowerCase()
  if (sub !== 'get' || args.length !== 3) throw new CommandError(`ERR CONFIG ${printable(args[1]).toUpperCase()} is not supported by the shardline router`)
  const name = args[2].toString('latin1').toLowerCase()
  return name in CONFIG_PARAMETERS ? [name, CONFIG_PARAMETERS[name]] : []
}

/** A signed 64-bit integer in Redis's syntax (a longer argument is never read as text). */
function parseInt64(raw: Buffer): bigint {
  return int64FromText(raw.length <= INT64_MAX_CHARS ? raw.toString('latin1') : '')
}

function parseTtlMs(raw: Buffer, unitMs: bigint, command: string): number {
  return ttlMsFromInt64(parseInt64(raw), unitMs, command)
}
