// What travels on a replication link, in RESP: log ops (counted by offset), snapshot records
// (not counted), and the control commands both ends speak; encoders for the sending side.
import type { RespWriter } from '../common/resp-writer.ts'
import { entryExpiresAt, entryFlags, entryIsCounter, entryIsTombstone, entryValue, entryVersion, rebaseExpiry } from './entry.ts'

// Peer → source: the first command, then acknowledgements.
export const SYNC = 'SL.SYNC' // SL.SYNC <replid|?> <next offset|-1> <peer name>
export const ACK = 'SL.ACK' // SL.ACK <next offset>
// Source → peer, control.
export const FULLSYNC = 'SL.FULLSYNC' // <replid> <offset the ops after the snapshot start from>
export const CONTINUE = 'SL.CONTINUE' // <replid> <offset>
export const SNAPSHOT_DONE = 'SL.SNAPDONE' // <records sent>
// <head offset> <ops and bytes the peer has not acknowledged> <the source's clock when sent, ms>
export const HEARTBEAT = 'SL.HEARTBEAT'
// Source → peer, snapshot records: keys with their packed entries (entry.ts), the expiry field
// holding the time left. Packed entries go as they are, so neither end re-encodes values.
export const SNAPSHOT = 'SL.SNAP' // <key> <entry> [<key> <entry> ...]
export const SNAPSHOT_BATCH_KEYS = 256
// Source → peer, log ops: the same versioned writes a router sends, so applying is one path.
export const SET_VERSIONED = 'SL.SETV' // <key> <value> <version> [PX ms] [FLAGS n]
export const DELETE_VERSIONED = 'SL.DELV' // <key> <version>
export const DROP = 'SL.DROP' // <key> <version>: evicted, or dropped by SL.DROP, on the sender; drop if no newer
// <key> <entry, expiry as time left>: a counter's packed entry, merged with the peer's (see
// counter-entry.ts): its per-writer components cannot travel as a plain versioned value.
export const PUT_ENTRY = 'SL.PUTE'
export const FLUSH = 'FLUSHALL'
// Peer → source: SL.BARRIER <token>, sent by a primary catching up on its write-back link. The
// source sends the ops it holds, then answers at once with SL.HEARTBEAT <head offset> <ops> <bytes>
// <sent at> <token>: the peer has everything its replica took once it applied up to that head. The
// token tells the answer from a heartbeat that waited in the socket while the peer was stalled.
export const BARRIER = 'SL.BARRIER'

/** The log op for a key that now holds packed (a value or a tombstone). */
export function writeChangeOp(writer: RespWriter, key: string, packed: string, now: number): void {
  const version = String(entryVersion(packed))
  if (entryIsTombstone(packed)) {
    command(writer, DELETE_VERSIONED, [key, version])
    return
  }
  if (entryIsCounter(packed)) {
    command(writer, PUT_ENTRY, [key, rebaseExpiry(packed, now, 0)])
    return
  }
  const args = [key, entryValue(packed), version]
  const expiresAt = entryExpiresAt(packed)
  if (expiresAt !== 0) args.push('PX', String(Math.max(1, expiresAt - now)))
  const flags = entryFlags(packed)
  if (flags !== 0) args.push('FLAGS', String(flags))
  command(writer, SET_VERSIONED, args)
}

/** One SL.SNAP command for keys and their packed entries ([key, entry, key, entry, …]). */
export function writeSnapshotBatch(writer: RespWriter, keysAndEntries: string[], now: number): void {
  writer.arrayHeader(keysAndEntries.length + 1)
  writer.bulkLatin1(SNAPSHOT)
  for (let i = 0; i < keysAndEntries.length; i += 2) {
    writer.bulkLatin1(keysAndEntries[i])
    writer.bulkLatin1(rebaseExpiry(keysAndEntries[i + 1], now, 0))
  }
}

/** One command whose arguments are latin1 strings (the store's in-memory form, byte for byte). */
export function command(writer: RespWriter, name: string, args: string[]): void {
  writer.arrayHeader(args.length + 1)
  writer.bulkLatin1(name)
  for (const arg of args) writer.bulkLatin1(arg)
}
