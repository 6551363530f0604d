// What travels on a replication link, in RESP: log ops (counted by offset), snapshot records
// (not counted), and the control commands both ends speak; encoders for the sending side.
import type { RespWriter } from '../common/resp-writer.ts'
import { entryExpiresAt, entryFlags, entryIsTombstone, entryValue, entryVersion } from './entry.ts'

// Peer → source: the first command, then acknowledgements.
export const SYNC = 'SL.SYNC' // SL.SYNC <replid|?> <next offset|-1> <peer name>
export const ACK = 'SL.ACK' // SL.ACK <next offset>
// Source → peer, control.
export const FULLSYNC = 'SL.FULLSYNC' // <replid> <offset the ops after the snapshot start from>
export const CONTINUE = 'SL.CONTINUE' // <replid> <offset>
export const SNAPSHOT_DONE = 'SL.SNAPDONE' // <records sent>
export const HEARTBEAT = 'SL.HEARTBEAT' // <head offset> <bytes the source holds that the peer has not acked>
// Source → peer, snapshot records (the state of one key when the snapshot reached it).
export const SNAPSHOT_VALUE = 'SL.SNAP' // <key> <value> <version> <pttl|-1> <flags>
export const SNAPSHOT_TOMBSTONE = 'SL.SNAPDEL' // <key> <version>
// Source → peer, log ops: the same versioned writes a router sends, so applying is one path.
export const SET_VERSIONED = 'SL.SETV' // <key> <value> <version> [PX ms] [FLAGS n]
export const DELETE_VERSIONED = 'SL.DELV' // <key> <version>
export const DROP = 'SL.DROP' // <key> <version>: evicted on the primary; drop if no newer
export const FLUSH = 'FLUSHALL'

/** The log op for a key that now holds packed (a value or a tombstone). */
export function writeChangeOp(writer: RespWriter, key: string, packed: string, now: number): void {
  const version = String(entryVersion(packed))
  if (entryIsTombstone(packed)) {
    command(writer, DELETE_VERSIONED, [key, version])
    return
  }
  const args = [key, entryValue(packed), version]
  const expiresAt = entryExpiresAt(packed)
  if (expiresAt !== 0) args.push('PX', String(Math.max(1, expiresAt - now)))
  const flags = entryFlags(packed)
  if (flags !== 0) args.push('FLAGS', String(flags))
  command(writer, SET_VERSIONED, args)
}

/** The snapshot record for a key that holds packed. */
export function writeSnapshotRecord(writer: RespWriter, key: string, packed: string, now: number): void {
  const version = String(entryVersion(packed))
  if (entryIsTombstone(packed)) {
    command(writer, SNAPSHOT_TOMBSTONE, [key, version])
    return
  }
  const expiresAt = entryExpiresAt(packed)
  const pttl = expiresAt === 0 ? -1 : Math.max(1, expiresAt - now)
  command(writer, SNAPSHOT_VALUE, [key, entryValue(packed), version, String(pttl), String(entryFlags(packed))])
}

/** One command whose arguments are latin1 strings (the store's in-memory form, byte for byte). */
export function command(writer: RespWriter, name: string, args: string[]): void {
  writer.arrayHeader(args.length + 1)
  writer.bulkLatin1(name)
  for (const arg of args) writer.bulkLatin1(arg)
}
