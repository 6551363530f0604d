// The rebalance job's move loop: scans every shard of the chosen pools page by page, stores each
// entry that is off its home on the home (version-checked), then drops it from where it was.
import { RespErrorReply, type RespReply } from '../common/resp-reply-parser.ts'
import type { RouterConfig } from '../router/config.ts'
import { ShardAccess } from '../router/shard-access.ts'
import type { CommandArg } from '../router/shard-connection.ts'
import { ENTRY_HEADER_BYTES, entryValue, entryVersion } from '../shard/entry.ts'
import { emptyTally, type RebalanceTally } from './metrics.ts'
import { PoolPlacement, type Action } from './placement.ts'
import type { RateLimiter } from './rate-limiter.ts'
import { ShardLink, ShardUnreachableError } from './shard-link.ts'
import { ShardScanner, type ScannedEntry } from './shard-scanner.ts'

export interface RebalanceOptions {
  config: RouterConfig
  /** Only this pool's shards; all pools when absent. */
  pool?: string
  /** SL.SCAN COUNT: keys per page. */
  page: number
  rate: RateLimiter
  /** Count what would move and change nothing. */
  dryRun: boolean
  /** How long a shard may not answer before its keys are counted failed. */
  shardTimeoutMs: number
}

/** The least time a shard has to answer a command of the job (the router's timeout is for one request). */
const PAGE_TIMEOUT_MS = 10_000

/** Shards scanned at the same time; each has at most two pages in flight (one moving, one read ahead). */
const PARALLEL_SHARDS = 4

interface ShardTask {
  pool: string
  shard: string
  placement: PoolPlacement
}

/** One off-home entry of a page on its way: where it goes and how it ended so far. */
interface Move {
  key: string
  entry: Buffer
  action: Action
  home: ShardLink
  /** The version the old copy is dropped up to. */
  version: number
}

export interface RebalanceResult {
  tally: RebalanceTally
  /** Shards whose scan could not finish, with why. */
  failedShards: string[]
}

export class RebalanceJob {
  readonly tally: RebalanceTally
  private readonly options: RebalanceOptions
  private readonly tasks: ShardTask[]
  private readonly links = new Map<string, ShardLink>()
  /** The links reach shards as a router does: over TLS and authenticated when the config says so. */
  private readonly access: ShardAccess
  private stopping = false

  constructor(options: RebalanceOptions) {
    this.options = options
    const pools = Object.entries(options.config.pools).filter(([name]) => options.pool === undefined || name === options.pool)
    this.tasks = pools.flatMap(([pool, poolConfig]) => {
      const placement = new PoolPlacement(poolConfig, options.config.hashing.pointsPerShard)
      return poolConfig.shards.map((shard) => ({ pool, shard: shard.name, placement }))
    })
    // Every scanning shard may send a page to one home at once: the queue must hold them all. A
    // page of commands takes longer than one request: a router's timeout would only make a busy
    // shard resend what it was still applying.
    const { connections: routerConnections } = options.config
    const connections = {
      ...routerConnections,
      maxQueue: Math.max(routerConnections.maxQueue, 2 * options.page * PARALLEL_SHARDS),
      timeoutMs: Math.max(routerConnections.timeoutMs, PAGE_TIMEOUT_MS),
    }
    this.access = new ShardAccess(options.config.shardAccess, (message) => console.error(`rebalance: ${message}`))
    for (const [pool, poolConfig] of pools) {
      for (const shard of poolConfig.shards) this.links.set(linkId(pool, shard.name), new ShardLink(pool, shard, connections, this.access, options.shardTimeoutMs))
    }
    this.tally = emptyTally(this.tasks.length)
  }

  /** Stops after the keys in flight: no new page is read. */
  stop(): void {
    this.stopping = true
  }

  async run(): Promise<RebalanceResult> {
    const failedShards: string[] = []
    const queue = [...this.tasks]
    const worker = async () => {
      for (let task = queue.shift(); task !== undefined && !this.stopping; task = queue.shift()) {
        try {
          if (await this.scanShard(task)) {
            this.tally.shardsPending--
            this.tally.shardsDone++
          }
        } catch (error) {
          if (!(error instanceof ShardUnreachableError)) throw error
          failedShards.push(`${task.pool}/${task.shard}: ${error.message}`)
        }
      }
    }
    try {
      await Promise.all(Array.from({ length: Math.min(PARALLEL_SHARDS, queue.length) }, worker))
    } finally {
      for (const link of this.links.values()) link.close()
      this.access.close()
    }
    return { tally: this.tally, failedShards }
  }

  /** Walks one shard to the end (true) or until stop() (false). */
  private async scanShard(task: ShardTask): Promise<boolean> {
    const holder = this.links.get(linkId(task.pool, task.shard))!
    const scanner = new ShardScanner(holder, this.options.page)
    let page = scanner.next()
    while (true) {
      const entries = await page
      if (entries === null) return true
      if (this.stopping) return false
      // Read the next page while this one moves.
      page = scanner.next()
      try {
        await this.movePage(task, holder, entries)
      } catch (error) {
        page.catch(() => {})
        throw error
      }
    }
  }

  private async movePage(task: ShardTask, holder: ShardLink, entries: ScannedEntry[]): Promise<void> {
    this.tally.scanned += entries.length
    const moves: Move[] = []
    for (const { key, entry } of entries) {
      const home = task.placement.home(key)
      if (home === task.shard) continue
      const header = entry.toString('latin1', 0, ENTRY_HEADER_BYTES)
      const action = task.placement.offHomeAction(key, header)
      if (action === 'expired') continue
      moves.push({ key, entry, action, home: this.links.get(linkId(task.pool, home))!, version: entryVersion(header) })
    }
    if (moves.length === 0) return
    if (this.options.dryRun) {
      this.tally.moved += moves.length
      return
    }
    await this.options.rate.take(moves.length)
    const stored = await Promise.all([
      this.storeOnHomes(moves.filter((move) => move.action === 'move')),
      ...moves.filter((move) => move.action === 'merge-counter' || move.action === 'add').map((move) => this.addCounter(move)),
    ])
    const toDrop = [...stored[0], ...stored.slice(1).flat(), ...moves.filter((move) => move.action === 'drop')]
    await this.dropFrom(holder, toDrop)
  }

  /** SL.PUTV each entry to its home, the ones per home together; returns the moves to drop. */
  private async storeOnHomes(moves: Move[]): Promise<Move[]> {
    const byHome = Map.groupBy(moves, (move) => move.home)
    const done = await Promise.all([...byHome].map(async ([home, homeMoves]) => {
      const replies = await this.sendOrFail(home, homeMoves.map((move) => ['SL.PUTV', move.key, move.entry]), true)
      return homeMoves.filter((_move, i) => this.countStore(replies?.[i]))
    }))
    return done.flat()
  }

  /**
   * A counter off its home. A live entry of an older epoch on the home is the home's own counter,
   * grown from nothing since the reload: the old sum is added to it with INCRBY. Otherwise SL.PUTV
   * (it stores the counter, merges two copies of one epoch writer by writer, or finds the home's
   * entry newer). A sub-counter is always added. Returns the move when the old copy may go.
   */
  private async addCounter(move: Move): Promise<Move[]> {
    let add = move.action === 'add'
    if (!add) {
      const current = await this.sendOne(move.home, ['SL.GETV', move.key], true)
      if (current instanceof Error) return this.fail()
      add = Array.isArray(current) && Number(current[1]) < move.version
    }
    const sum = entryValue(move.entry.toString('latin1'))
    if (add && sum !== '0') {
      // Not idempotent: a reply lost after sending is a failure, never a second INCRBY.
      const reply = await this.sendOne(move.home, ['INCRBY', move.key, sum], false)
      // An older value there that is no integer is no counter of the home's: the counter replaces it.
      const notACounter = reply instanceof RespErrorReply && reply.message.includes('not an integer')
      if (!notACounter) {
        if (reply instanceof Error) return this.fail()
        this.tally.moved++
        return [move]
      }
    }
    return this.countStore(await this.sendOne(move.home, ['SL.PUTV', move.key, move.entry], true)) ? [move] : []
  }

  /** Tallies a PUTV's reply; true when the old copy may go (stored, or the home had newer). */
  private countStore(reply: RespReply | Error | undefined): boolean {
    if (reply === 1) this.tally.moved++
    else if (reply === 0) this.tally.skippedOlder++
    else {
      this.tally.failed++
      return false
    }
    return true
  }

  private fail(): Move[] {
    this.tally.failed++
    return []
  }

  /** SL.DROP each moved key from the shard it was on, up to the version moved. */
  private async dropFrom(holder: ShardLink, moves: Move[]): Promise<void> {
    if (moves.length === 0) return
    const replies = await this.sendOrFail(holder, moves.map((move) => ['SL.DROP', move.key, String(move.version)]), true)
    for (let i = 0; i < moves.length; i++) {
      const reply = replies?.[i]
      if (reply === 1) this.tally.removed++
      else if (reply === 0) this.tally.keptNewer++
      else this.tally.failed++
    }
  }

  private async sendOne(link: ShardLink, command: CommandArg[], idempotent: boolean): Promise<RespReply | Error> {
    const replies = await this.sendOrFail(link, [command], idempotent)
    return replies === null ? new ShardUnreachableError(link.name) : replies[0]
  }

  /** The replies, or null when the shard is unreachable (the caller counts its keys failed). */
  private async sendOrFail(link: ShardLink, commands: CommandArg[][], idempotent: boolean): Promise<Array<RespReply | Error> | null> {
    try {
      return await link.sendAll(commands, idempotent)
    } catch (error) {
      if (error instanceof ShardUnreachableError) return null
      throw error
    }
  }
}

const linkId = (pool: string, shard: string) => `${pool}\u0000${shard}`
