// SL.SCAN's sessions: each walks a snapshot of the shard's key list taken when its scan started,
// in pages bounded by a key count and a byte budget; a cap on sessions, and idle ones dropped.
import { randomInt } from 'node:crypto'
import { CommandError } from '../common/resp-arguments.ts'
import { rebaseExpiry } from './entry.ts'
import type { Store } from './store.ts'

export const INVALID_CURSOR = 'ERR invalid cursor'
export const DEFAULT_SCAN_COUNT = 100
export const MAX_SCAN_COUNT = 10_000
/** A page stops once its keys and entries pass this many bytes (it always holds at least one key; RESP's framing is not counted). */
export const SCAN_PAGE_BYTES = 4 * 1024 * 1024
/**
 * A page looks at up to this many snapshot keys per key it may return: keys removed since the
 * scan started are skipped, and a page of mostly removed keys is cut short (possibly empty, its
 * cursor not "0", as Redis's SCAN may answer) rather than walking the whole snapshot in one command.
 */
const LOOKS_PER_KEY = 10

export interface KeyScanSettings {
  /** Past this many open scans, the least recently used one is dropped. */
  maxSessions: number
  /** A scan nobody asked for a page of in this long is dropped. */
  idleMs: number
}

export const DEFAULT_KEY_SCAN_SETTINGS: KeyScanSettings = { maxSessions: 16, idleMs: 5 * 60_000 }

export interface ScanPage {
  /** What to ask for the next page with; "0" once the scan is done. */
  cursor: string
  /** [key, entry, key, entry, …]: packed entries (entry.ts), tombstones and counters included, each expiry as time left. */
  keysAndEntries: string[]
}

// Why a snapshot: lru-cache's own iterators walk in recency order, which every read changes (a key
// read mid-scan moves to the front), so a live iterator could skip or repeat keys. The snapshot
// is an array of references to the key strings the store holds anyway: 8 bytes per key (8 MB at
// 1M keys) per open scan, copied in one go (tens of ms at 1M keys, see Store.keyList). Keys a scan has passed are released; a key removed from the store
// after the scan started stays alive in the snapshot until the scan passes it.
interface Session {
  keys: Array<string | undefined>
  /** Where the last page served began: asking for it again (a retry) reads it again; earlier pages are gone. */
  from: number
  idle: NodeJS.Timeout
}

// A cursor is a session's id in its upper 32 bits and a position in its snapshot in the lower 32,
// in decimal: a retried page request reads the same page, and the random id makes a cursor from
// an earlier process or another caller's scan unknown here rather than the wrong scan.
const POSITION_BITS = 32n
const POSITION_MASK = (1n << POSITION_BITS) - 1n
const MAX_CURSOR_CHARS = 20

export class KeyScans {
  private readonly store: Store
  private readonly settings: KeyScanSettings
  /** Open scans by id, least recently used first. */
  private readonly sessions = new Map<number, Session>()

  constructor(store: Store, settings: KeyScanSettings = DEFAULT_KEY_SCAN_SETTINGS) {
    this.store = store
    this.settings = settings
  }

  /** Scans open now. */
  get open(): number {
    return this.sessions.size
  }

  /**
   * The page at cursor ("0" starts a scan) of up to count keys, ending once past maxBytes. Every
   * key present when the scan started and still present when its page is read is returned exactly
   * once; keys written after the start are not. Throws INVALID_CURSOR for a cursor not open here.
   */
  page(cursor: string, count: number, maxBytes: number): ScanPage {
    const value = parseCursor(cursor)
    const id = value === 0n ? this.start() : Number(value >> POSITION_BITS)
    const position = Number(value & POSITION_MASK)
    const session = this.sessions.get(id)
    if (session === undefined || position < session.from || position > session.keys.length) throw new CommandError(INVALID_CURSOR)
    this.touch(id, session)
    for (let i = session.from; i < position; i++) session.keys[i] = undefined
    session.from = position
    const { keys } = session
    const lookUntil = Math.min(keys.length, position + count * LOOKS_PER_KEY)
    const keysAndEntries: string[] = []
    const now = Date.now()
    let bytes = 0
    let next = position
    while (next < lookUntil && keysAndEntries.length < count * 2 && bytes < maxBytes) {
      const key = keys[next++]!
      const packed = this.store.peekEntry(key)
      if (packed === undefined) continue
      const entry = rebaseExpiry(packed, now, 0)
      keysAndEntries.push(key, entry)
      bytes += key.length + entry.length
    }
    if (next < keys.length) return { cursor: String((BigInt(id) << POSITION_BITS) | BigInt(next)), keysAndEntries }
    this.close(id)
    return { cursor: '0', keysAndEntries }
  }

  private start(): number {
    let id: number
    do id = randomInt(1, 2 ** 31)
    while (this.sessions.has(id))
    if (this.sessions.size >= this.settings.maxSessions) this.close(this.sessions.keys().next().value!)
    const idle = setTimeout(() => this.close(id), this.settings.idleMs)
    idle.unref()
    this.sessions.set(id, { keys: this.store.keyList(), from: 0, idle })
    return id
  }

  private touch(id: number, session: Session): void {
    this.sessions.delete(id)
    this.sessions.set(id, session)
    session.idle.refresh()
  }

  private close(id: number): void {
    const session = this.sessions.get(id)
    if (session === undefined) return
    clearTimeout(session.idle)
    this.sessions.delete(id)
  }
}

function parseCursor(cursor: string): bigint {
  if (cursor.length > MAX_CURSOR_CHARS || !/^\d+$/.test(cursor)) throw new CommandError(INVALID_CURSOR)
  return BigInt(cursor)
}
