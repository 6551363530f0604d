// A packed entry (entry.ts) as another process sends it — a replication snapshot or op, SL.PUTV
// of what SL.SCAN gave — with its expiry as time left: checked whole, then made absolute here.
import { ENTRY_HEADER_BYTES, entryExpiresAt, entryFlags, entryIsCounter, entryIsTombstone, entryVersion, packEntry, rebaseExpiry } from './entry.ts'
import { StoreError } from './store.ts'

export const MALFORMED_ENTRY = 'ERR malformed entry: not a packed entry as SL.SCAN returns it'

/**
 * sent (latin1) as this clock's entry, or a StoreError when it is shorter than its header, carries
 * a mark this shard never writes (the header read back and written again differs), or is a
 * tombstone with a value. The store checks the rest when it restores it (version range, a
 * counter's components).
 */
export function receivedEntry(sent: string, now: number): string {
  if (sent.length < ENTRY_HEADER_BYTES) throw new StoreError(MALFORMED_ENTRY)
  const tombstone = entryIsTombstone(sent)
  const counter = entryIsCounter(sent)
  if (tombstone && (counter || sent.length > ENTRY_HEADER_BYTES)) throw new StoreError(MALFORMED_ENTRY)
  const header = packEntry('', { version: entryVersion(sent), expiresAt: entryExpiresAt(sent), flags: entryFlags(sent), tombstone, counter })
  if (!sent.startsWith(header)) throw new StoreError(MALFORMED_ENTRY)
  return rebaseExpiry(sent, 0, now)
}
