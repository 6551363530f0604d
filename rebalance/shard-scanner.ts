// Reads one shard's keys page by page with SL.SCAN (each key with its packed entry); a cursor the
// shard no longer knows (it restarted, or the session expired) starts the scan over from "0".
import { RespErrorReply, type RespReply } from '../common/resp-reply-parser.ts'
import type { ShardLink } from './shard-link.ts'

export interface ScannedEntry {
  /** The key's bytes as a latin1 string (what the ring hashes). */
  key: string
  /** The packed entry, its expiry in time-left form. */
  entry: Buffer
}

/** SL.SCAN COUNT's bounds (shard/commands.ts). */
export const MAX_PAGE = 10_000

export class ShardScanner {
  private readonly link: ShardLink
  private readonly page: number
  private cursor = '0'
  private done = false
  /** Times the shard forgot the cursor and the scan started over. */
  restarts = 0

  constructor(link: ShardLink, page: number) {
    this.link = link
    this.page = page
  }

  /** The next page of entries, or null once the scan has walked every key. */
  async next(): Promise<ScannedEntry[] | null> {
    if (this.done) return null
    const [reply] = await this.link.sendAll([['SL.SCAN', this.cursor, 'COUNT', String(this.page)]], true)
    if (reply instanceof RespErrorReply && /invalid cursor/i.test(reply.message)) {
      // Moves are idempotent: walking keys again costs time, not correctness.
      this.cursor = '0'
      this.restarts++
      return []
    }
    const { cursor, entries } = parseScanReply(this.link.name, reply)
    this.cursor = cursor
    this.done = cursor === '0'
    return entries
  }
}

function parseScanReply(shard: string, reply: RespReply | Error): { cursor: string; entries: ScannedEntry[] } {
  if (reply instanceof Error) throw new Error(`${shard}: SL.SCAN failed: ${reply.message}`)
  if (!Array.isArray(reply) || reply.length !== 2 || !Buffer.isBuffer(reply[0]) || !Array.isArray(reply[1]) || reply[1].length % 2 !== 0) {
    throw new Error(`${shard}: SL.SCAN gave an unexpected reply`)
  }
  const flat = reply[1]
  const entries: ScannedEntry[] = []
  for (let i = 0; i < flat.length; i += 2) {
    const key = flat[i]
    const entry = flat[i + 1]
    if (!Buffer.isBuffer(key) || !Buffer.isBuffer(entry)) throw new Error(`${shard}: SL.SCAN gave an entry that is not a bulk string`)
    entries.push({ key: key.toString('latin1'), entry })
  }
  return { cursor: reply[0].toString('latin1'), entries }
}
