// The in-memory form of one stored entry: a single latin1 string of an 18-byte header
// (version, tombstone or counter mark, expiry, flags) followed by the value's bytes.

// Why a packed string: a JS object per entry plus boxed doubles and a Buffer costs about
// 150 bytes more per item than one flat one-byte string, and per-item memory is what decides
// how many items a shard holds (see bench/RESULTS.md, "memory per item").

const VERSION_OFFSET = 0
// Versions are safe integers (53 bits), so the version field's top byte is free for the mark
// that says the entry is a tombstone: a delete remembered with its version.
const MARK_OFFSET = 7
const TOMBSTONE_MARK = 1
// A counter's value bytes are its sum, a newline and its per-writer components (counter-entry.ts).
const COUNTER_MARK = 2
const EXPIRES_OFFSET = 8
const FLAGS_OFFSET = 14
export const ENTRY_HEADER_BYTES = 18
/** The latest expiry the header's 6-byte field holds (epoch ms, in the year 10889). */
export const MAX_EXPIRES_AT = 2 ** 48 - 1

export interface EntryMeta {
  version: number
  /** Absolute expiry in epoch milliseconds; 0 = never. */
  expiresAt: number
  flags: number
  /** A deleted key's version, kept so that an older write cannot bring the key back. */
  tombstone?: boolean
  /** A counter: the value bytes are laid out as counter-entry.ts says. */
  counter?: boolean
}

/** Entries up to this size are assembled in one buffer reused by every write; a bigger one gets its own. */
const REUSED_ASSEMBLY_BYTES = 64 * 1024
let assembly = Buffer.allocUnsafeSlow(1024)

// Where an entry of length bytes is put together before it becomes a string: the string is the
// one copy that stays, so the buffer is reused instead of being garbage after every write.
function assemblyBuffer(length: number): Buffer {
  if (length <= assembly.length) return assembly
  if (length > REUSED_ASSEMBLY_BYTES) return Buffer.allocUnsafeSlow(length)
  assembly = Buffer.allocUnsafeSlow(Math.min(REUSED_ASSEMBLY_BYTES, Math.max(length, assembly.length * 2)))
  return assembly
}

export function packEntry(value: Buffer | string, meta: EntryMeta): string {
  const length = ENTRY_HEADER_BYTES + value.length
  const out = assemblyBuffer(length)
  writeHeader(out, meta)
  if (typeof value === 'string') out.write(value, ENTRY_HEADER_BYTES, 'latin1')
  else value.copy(out, ENTRY_HEADER_BYTES)
  return out.toString('latin1', 0, length)
}

/** The same value under a new header (EXPIRE, INCR keep or rewrite only the metadata). */
export function repackEntry(packed: string, meta: EntryMeta): string {
  return packEntry(packed.substring(ENTRY_HEADER_BYTES), meta)
}

/**
 * The entry with its expiry field rebased: absolute → time left (to send it to another clock) or
 * time left → absolute (on arrival). Entries without expiry are returned as they are. A time left
 * from a peer can be anything up to MAX_EXPIRES_AT: the result is capped to what the field holds.
 */
export function rebaseExpiry(packed: string, from: number, to: number): string {
  const expiresAt = entryExpiresAt(packed)
  if (expiresAt === 0) return packed
  const rebased = Math.min(MAX_EXPIRES_AT, Math.max(1, expiresAt - from + to))
  return packEntry(packed.substring(ENTRY_HEADER_BYTES), { version: entryVersion(packed), expiresAt: rebased, flags: entryFlags(packed), tombstone: entryIsTombstone(packed), counter: entryIsCounter(packed) })
}

function writeHeader(out: Buffer, meta: EntryMeta): void {
  out.writeUInt32LE(meta.version % 0x100000000, VERSION_OFFSET)
  out.writeUInt32LE(Math.floor(meta.version / 0x100000000), VERSION_OFFSET + 4)
  out[MARK_OFFSET] = (meta.tombstone ? TOMBSTONE_MARK : 0) | (meta.counter ? COUNTER_MARK : 0)
  out.writeUIntLE(meta.expiresAt, EXPIRES_OFFSET, 6)
  out.writeUInt32LE(meta.flags >>> 0, FLAGS_OFFSET)
}

export function entryVersion(packed: string): number {
  return readUInt(packed, VERSION_OFFSET, 4) + readUInt(packed, VERSION_OFFSET + 4, 3) * 0x100000000
}

export function entryIsTombstone(packed: string): boolean {
  return (packed.charCodeAt(MARK_OFFSET) & TOMBSTONE_MARK) !== 0
}

export function entryIsCounter(packed: string): boolean {
  return (packed.charCodeAt(MARK_OFFSET) & COUNTER_MARK) !== 0
}

export function entryExpiresAt(packed: string): number {
  return readUInt(packed, EXPIRES_OFFSET, 6)
}

export function entryFlags(packed: string): number {
  return readUInt(packed, FLAGS_OFFSET, 4)
}

/** The value a client reads, as a latin1 string (a cheap slice, no copy): a counter's sum. */
export function entryValue(packed: string): string {
  if (!entryIsCounter(packed)) return packed.substring(ENTRY_HEADER_BYTES)
  const end = packed.indexOf('\n', ENTRY_HEADER_BYTES)
  return packed.substring(ENTRY_HEADER_BYTES, end === -1 ? packed.length : end)
}

/** Every byte after the header: a counter's components too (digests and merges compare these). */
export function entryPayload(packed: string): string {
  return packed.substring(ENTRY_HEADER_BYTES)
}

// Little-endian unsigned integer of up to 6 bytes from a latin1 string.
function readUInt(packed: string, offset: number, bytes: number): number {
  let value = 0
  for (let i = bytes - 1; i >= 0; i--) value = value * 256 + packed.charCodeAt(offset + i)
  return value
}
