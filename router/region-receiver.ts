// The router's side of multi-region: SL.REGION.HELLO and SL.REGION.APPLY from a peer region's shards —
// who may send them, what each pool takes, where each op goes (this region's ring) and what is answered.
import { REGION_SLOTS } from '../common/hlc.ts'
import type { Logger } from '../common/logger.ts'
import { REGION_APPLY, REGION_ID, REGION_NAME_PATTERN, REGION_OPS, REGION_USER, type RouterRegionConfig } from '../common/region.ts'
import { CommandError } from '../common/resp-arguments.ts'
import { RespErrorReply, type RespReply } from '../common/resp-reply-parser.ts'
import { ThrottledWarnings } from '../common/throttled-warning.ts'
import { ENTRY_HEADER_BYTES, entryIsTombstone } from '../shard/entry.ts'
import { NoHealthyDestinationError, QueueFullError, ShardConnectionError, ShardTimeoutError } from './errors.ts'
import type { RegionMetrics } from './metrics.ts'
import type { RegionRoute } from './region-route.ts'
import { BEFORE_AUTH, NOAUTH, type CommandSpec } from './resp-commands.ts'
import { ErrorReply, Status, routeErrorReply, type Reply } from './resp-reply.ts'
import type { RouteTree } from './route-tree.ts'
import { parseDerivedKey } from './routes/hot-key-route.ts'
import type { RawResult } from './routes/route.ts'

/**
 * What SL.REGION.* need of their connection: the tree, read once per command. A connection's ops on
 * one key are not held in order (as resp-key-order.ts holds a client's): each is apply-if-newer or a
 * merge, so the order they are applied in does not change the outcome.
 */
export interface RegionContext {
  tree: RouteTree
}

/** How the connection asking stands: authenticated as a peer region, as a tenant, or neither. */
export interface RegionAsker {
  peer: boolean
  tenant: boolean
  remoteAddress: string | undefined
}

type RegionOp = (typeof REGION_OPS)[number]

const REGION_NAME = new RegExp(REGION_NAME_PATTERN)
const REGION_ID_TEXT = /^(?:[0-9]|1[0-5])$/
const WRITER_ID = /^[A-Za-z0-9_-]{1,32}$/
/** A version as SL.SETV and SL.DELV take it: a positive safe integer. */
const VERSION_TEXT = /^[1-9][0-9]{0,15}$/
/** SL.REGION.APPLY <origin> <pool> <op> <key> …: the arguments (name included) each op takes, at least and at most. */
const OP_ARITY: Record<RegionOp, [number, number]> = {
  // <value> <version> [PX ms] [FLAGS n]
  'SL.SETV': [7, 11],
  // <version>
  'SL.DELV': [6, 6],
  // <packed entry>
  'SL.PUTE': [6, 6],
  'SL.PUTV': [6, 6],
}
/** Not applied, but may be later: the owning shard could not be reached, or did not answer in time. */
const RETRYABLE = [ShardConnectionError, NoHealthyDestinationError, ShardTimeoutError, QueueFullError]
/** Origins named in metrics at most (beyond them: "other"): one region name per version slot. */
const MAX_ORIGIN_LABELS = REGION_SLOTS

export class RegionReceiver {
  private readonly metrics: RegionMetrics
  private readonly warnings: ThrottledWarnings
  /** Origin names already used as labels: peers that passed the checks. */
  private readonly origins = new Set<string>()

  constructor(metrics: RegionMetrics, log: Logger) {
    this.metrics = metrics
    this.warnings = new ThrottledWarnings(log)
  }

  /**
   * Why a connection may not run spec (null: it may). A peer region's connection runs SL.REGION.*
   * and the connection commands only; SL.REGION.* need that connection, unless the router has no
   * region passwords and no tenants (then anyone may), and tenants never run them.
   */
  refusal(tree: RouteTree, spec: CommandSpec, args: Buffer[], asker: RegionAsker): ErrorReply | null {
    // Not a region command: the connection is a peer's.
    if (spec.region !== true) return BEFORE_AUTH.has(spec.name) ? null : new ErrorReply(`NOPERM a peer region's connection may run only SL.REGION.*, AUTH, HELLO, PING and QUIT, not '${spec.name}'`, 'noperm')
    const access = tree.regionAccess
    // Without a region the command itself says so.
    if (asker.peer || access.open || access.region === null) return null
    this.metrics.error(args.length > 1 ? this.knownOrigin(args[1]) : 'unknown', 'unauthorized')
    if (asker.tenant || !access.takesPasswords) {
      tree.authFailures.record('forbidden', asker.remoteAddress, 'resp')
      return new ErrorReply(asker.tenant
        ? `NOPERM tenants may not run '${spec.name}': peer regions' shards AUTH as ${REGION_USER} with a region password`
        : `NOPERM this router takes '${spec.name}' only from peer regions that AUTH ${REGION_USER} <password>, and it has no region.passwords`, 'noperm')
    }
    tree.authFailures.record('missing_token', asker.remoteAddress, 'resp')
    return new ErrorReply(NOAUTH, 'noauth')
  }

  /** AUTH region <password> with a wrong password: counted (the origin is not known before SL.REGION.*). */
  refusedPassword(): void {
    this.metrics.error('unknown', 'unauthorized')
  }

  /** SL.REGION.HELLO <origin region> <origin id> <pool> → [this region's name, its id, the pool's incarnation]. */
  hello(ctx: RegionContext, args: Buffer[]): Reply | Promise<Reply> {
    let origin = 'invalid'
    let region: RouterRegionConfig
    let route: RegionRoute
    try {
      region = ownRegion(ctx.tree)
      origin = this.origin(region, args[1])
      const id = args[2].toString('latin1')
      if (!REGION_ID_TEXT.test(id)) throw new CommandError(`ERR invalid region id: must be an integer from 0 to ${REGION_SLOTS - 1}`)
      if (Number(id) === region.id) throw new CommandError(`ERR region id ${id} is this region's own (${region.name}): every region needs its own id`)
      route = poolRoute(ctx.tree, args[3])
    } catch (error) {
      return this.refused(origin, error)
    }
    const idOf = (shard: string) => ctx.tree.routeRegion(route.toShard(shard), { kind: 'raw', key: '', command: [REGION_ID] }).then(writerId, () => '?')
    return Promise.all(route.shards.map(idOf)).then((ids) => [region.name, region.id, route.shards.map((shard, i) => `${shard}=${ids[i]}`).join(',')])
  }

  /**
   * SL.REGION.APPLY <origin region> <pool> <op> <key> <args…>: checked, then sent to the key's owner
   * in this region as SL.REGION.APPLY <origin region> <op> <key> <args…>, and its reply relayed.
   */
  applyOp(ctx: RegionContext, args: Buffer[]): Reply | Promise<Reply> {
    let origin = 'invalid'
    let route: RegionRoute
    let op: RegionOp
    let key: string
    try {
      const region = ownRegion(ctx.tree)
      origin = this.origin(region, args[1])
      route = poolRoute(ctx.tree, args[2])
      op = regionOp(args[3])
      const [least, most] = OP_ARITY[op]
      if (args.length < least || args.length > most) throw new CommandError(`ERR wrong number of arguments for ${op} in '${REGION_APPLY}'`)
      if (route.mode === 'invalidate' && !isDelete(op, args[5])) throw new CommandError(`ERR pool ${route.pool} takes only deletes from other regions (region: invalidate), not ${op} of a value`)
      key = checkedKey(ctx.tree, args[4])
      checkPayload(ctx.tree, op, args)
    } catch (error) {
      return this.refused(origin, error)
    }
    const command = [REGION_APPLY, args[1], op, ...args.slice(4)]
    return ctx.tree.routeRegion(route, { kind: 'raw', key, command }).then(
      (result) => this.relay(origin, route.pool, result.reply),
      (error: unknown) => this.failed(origin, error),
    )
  }

  /** The owning shard's answer as it is: applied (or older than what it holds), or its error. */
  private relay(origin: string, pool: string, reply: RespReply): Reply {
    if (reply instanceof RespErrorReply) {
      // (LOADING never comes here: the failover route tries the next destination, then throws.)
      const retry = reply.message.startsWith('TRYAGAIN')
      this.metrics.error(origin, retry ? 'retry' : 'refused')
      if (!retry) this.warnings.warn('a peer region\'s write was refused by the shard that owns its key', { origin, pool, error: reply.message.slice(0, 200) })
      return new ErrorReply(reply.message, retry ? 'tryagain' : 'shard_error')
    }
    this.metrics.applied(origin, pool)
    return asReply(reply)
  }

  /** A shard unreachable, busy or slow: -TRYAGAIN (every region op is safe to send again). */
  private failed(origin: string, error: unknown): ErrorReply {
    if (RETRYABLE.some((type) => error instanceof type)) {
      this.metrics.error(origin, 'retry')
      const { code, message } = error as ShardConnectionError
      return new ErrorReply(`TRYAGAIN ${code}: ${message}`, code)
    }
    this.metrics.error(origin, 'refused')
    return routeErrorReply(error)
  }

  private refused(origin: string, error: unknown): ErrorReply {
    if (!(error instanceof CommandError)) throw error
    this.metrics.error(origin, 'refused')
    this.warnings.warn('refused a peer region\'s command', { origin, error: error.message })
    return new ErrorReply(error.message)
  }

  /** The origin region's name, checked; as a metrics label once it is known (or "other", past MAX_ORIGIN_LABELS). */
  private origin(region: RouterRegionConfig, raw: Buffer): string {
    const name = raw.length <= 32 ? raw.toString('latin1') : ''
    if (!REGION_NAME.test(name)) throw new CommandError('ERR invalid origin region: must be 1-32 of a-z, 0-9 and -, starting with a letter or digit')
    if (name === region.name) throw new CommandError(`ERR origin region ${name} is this region: a region does not take its own writes`)
    if (!this.origins.has(name)) {
      if (this.origins.size >= MAX_ORIGIN_LABELS) return 'other'
      this.origins.add(name)
    }
    return name
  }

  /** A label for an origin that was not let in: its name only if a peer of that name was. */
  private knownOrigin(raw: Buffer): string {
    const name = raw.length <= 32 ? raw.toString('latin1') : ''
    return this.origins.has(name) ? name : 'unknown'
  }
}

function ownRegion(tree: RouteTree): RouterRegionConfig {
  const region = tree.regionAccess.region
  if (region === null) throw new CommandError('ERR this router has no region: set region.name and region.id to take writes from peer regions')
  return region
}

function poolRoute(tree: RouteTree, raw: Buffer): RegionRoute {
  const name = raw.length <= 128 ? raw.toString('latin1') : ''
  const route = tree.regionRoutes.get(name)
  if (route === undefined) throw new CommandError(`ERR unknown pool ${JSON.stringify(name.slice(0, 64))} (pools: ${[...tree.regionRoutes.keys()].join(', ')})`)
  if (route.mode === 'none') throw new CommandError(`ERR pool ${name} takes no region writes (pools.${name}.region is none)`)
  return route
}

function regionOp(raw: Buffer): RegionOp {
  const name = raw.length <= 16 ? raw.toString('latin1').toUpperCase() : ''
  const op = REGION_OPS.find((known) => known === name)
  if (op === undefined) throw new CommandError(`ERR unknown region op: must be one of ${REGION_OPS.join(', ')}`)
  return op
}

/** A delete as invalidate mode takes it: SL.DELV, or a scanned tombstone (SL.PUTV). */
function isDelete(op: RegionOp, payload: Buffer): boolean {
  return op === 'SL.DELV' || (op === 'SL.PUTV' && payload.length >= ENTRY_HEADER_BYTES && entryIsTombstone(payload.toString('latin1', 0, ENTRY_HEADER_BYTES)))
}

/** A wire key (namespaced in its origin already), in the route tree's latin1 form; a hot key's derived keys may pass maxKeyBytes by their tag. */
function checkedKey(tree: RouteTree, raw: Buffer): string {
  const { maxKeyBytes } = tree.config.limits
  if (raw.length === 0) throw new CommandError('ERR invalid key: empty')
  const key = raw.toString('latin1')
  if (raw.length > maxKeyBytes && (parseDerivedKey(key)?.base.length ?? Infinity) > maxKeyBytes) throw new CommandError(`ERR invalid key: ${raw.length} bytes, the limit is ${maxKeyBytes} (limits.maxKeyBytes)`)
  return key
}

/** The value or entry within limits.maxValueBytes, and the version a positive safe integer; the shard checks the rest. */
function checkPayload(tree: RouteTree, op: RegionOp, args: Buffer[]): void {
  const { maxValueBytes } = tree.config.limits
  if (op !== 'SL.DELV') {
    const entry = op !== 'SL.SETV'
    if (entry && args[5].length < ENTRY_HEADER_BYTES) throw new CommandError('ERR malformed entry: shorter than an entry\'s header')
    const valueBytes = args[5].length - (entry ? ENTRY_HEADER_BYTES : 0)
    if (valueBytes > maxValueBytes) throw new CommandError(`ERR value too large: ${valueBytes} bytes, the limit is ${maxValueBytes} (limits.maxValueBytes)`)
  }
  const version = op === 'SL.SETV' ? args[6] : op === 'SL.DELV' ? args[5] : null
  if (version !== null && !(version.length <= 16 && VERSION_TEXT.test(version.toString('latin1')) && Number(version.toString('latin1')) <= Number.MAX_SAFE_INTEGER)) {
    throw new CommandError('ERR invalid version: must be an integer from 1 to 2^53-1')
  }
}

/** A shard's SL.REGION.ID reply as HELLO lists it: its writer id, or ? for anything else. */
function writerId({ reply }: RawResult): string {
  const text = Buffer.isBuffer(reply) ? reply.toString('latin1') : typeof reply === 'string' ? reply : ''
  return WRITER_ID.test(text) ? text : '?'
}

/** A shard's reply as the RESP front writes it (a simple string stays one). */
function asReply(reply: RespReply): Reply {
  if (typeof reply === 'string') return new Status(reply)
  if (Array.isArray(reply)) return reply.map(asReply)
  if (reply instanceof RespErrorReply) return new ErrorReply(reply.message, 'shard_error')
  return reply
}
