// What a region shipper reads and sends: a log op's name and key read in place from its RESP bytes,
// the op wrapped as SL.REGION.APPLY <origin> <pool> <op…> by splicing, and a peer's incarnation.
import { REGION_APPLY, type RegionMode } from '../common/region.ts'
import { RespWriter } from '../common/resp-writer.ts'
import { DELETE_VERSIONED, PUT_ENTRY, SET_VERSIONED } from './replication-wire.ts'

/** The full scan ships each entry as SL.SCAN gives it. */
export const PUT_SCANNED = 'SL.PUTV'

/** Log ops that cross, by mode (SL.DROP and FLUSHALL never do). */
const SHIPPED: Record<RegionMode, ReadonlySet<string>> = {
  replicate: new Set([SET_VERSIONED, DELETE_VERSIONED, PUT_ENTRY]),
  invalidate: new Set([DELETE_VERSIONED]),
  none: new Set(),
}

/** One log op as written by replication-wire.ts: a RESP array of bulk strings, its name first. */
export interface LogOp {
  /** Elements in the array, the name included. */
  count: number
  /** Where the first element (the name) starts: what follows the array header. */
  elementsStart: number
  name: string
}

// The log holds this shard's own encoding, so its bytes are trusted: no bounds beyond the buffer's.
export function readLogOp(op: Buffer): LogOp {
  const headerEnd = op.indexOf('\r\n')
  const name = bulkAt(op, headerEnd + 2)
  return { count: Number(op.toString('latin1', 1, headerEnd)), elementsStart: headerEnd + 2, name: op.toString('latin1', name.start, name.end) }
}

/** The key of a log op (its second element), for logs. */
export function logOpKey(op: Buffer): string {
  const name = bulkAt(op, op.indexOf('\r\n') + 2)
  const key = bulkAt(op, name.end + 2)
  return op.toString('latin1', key.start, key.end)
}

export function shippedInMode(mode: RegionMode, opName: string): boolean {
  return SHIPPED[mode].has(opName)
}

function bulkAt(op: Buffer, at: number): { start: number; end: number } {
  const lineEnd = op.indexOf('\r\n', at)
  const start = lineEnd + 2
  return { start, end: start + Number(op.toString('latin1', at + 1, lineEnd)) }
}

/** Builds SL.REGION.APPLY <origin> <pool> … around log ops and scanned entries. */
export class RegionApplyEncoder {
  /** The bulk strings after the array header that every wrapped op shares. */
  private readonly prefix: Buffer
  private readonly origin: string
  private readonly pool: string
  private readonly writer = new RespWriter()

  constructor(origin: string, pool: string) {
    this.origin = origin
    this.pool = pool
    for (const part of [REGION_APPLY, origin, pool]) this.writer.bulkLatin1(part)
    this.prefix = this.writer.take()
  }

  /** The op's bytes as pieces to write in order: a new header, the shared prefix, the op's elements as they are. */
  wrap(op: Buffer, parsed: LogOp): Buffer[] {
    return [Buffer.from(`*${parsed.count + 3}\r\n`, 'latin1'), this.prefix, op.subarray(parsed.elementsStart)]
  }

  /** SL.REGION.APPLY <origin> <pool> SL.PUTV <key> <entry, expiry as time left>. */
  scanned(key: string, entryToSend: string): Buffer {
    this.writer.arrayHeader(6)
    for (const part of [REGION_APPLY, this.origin, this.pool, PUT_SCANNED, key, entryToSend]) this.writer.bulkLatin1(part)
    return this.writer.take()
  }
}

/** Longest shard name and writer id an incarnation may carry (shard names and writer ids are shorter). */
const MAX_INCARNATION_PART = 128

/**
 * "s0=<writer id>,s1=?" as shard name → writer id ("?" for one that did not answer); null when the
 * text is not an incarnation.
 */
export function parseIncarnation(text: string): Map<string, string> | null {
  const writers = new Map<string, string>()
  if (text === '') return writers
  for (const part of text.split(',')) {
    const at = part.indexOf('=')
    if (at <= 0 || at === part.length - 1 || part.length > MAX_INCARNATION_PART || writers.has(part.slice(0, at))) return null
    writers.set(part.slice(0, at), part.slice(at + 1))
  }
  return writers
}
