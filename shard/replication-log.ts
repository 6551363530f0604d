// The replication log: every write a shard must pass on, RESP-encoded, numbered by a monotonic
// offset and kept in a backlog bounded in bytes, from which a reconnecting replica resumes.
import { randomBytes } from 'node:crypto'

/** An offset a replica asks for has left the backlog (or is from another log). */
export const NOT_IN_BACKLOG = -1

export class ReplicationLog {
  /** Names this log: offsets mean something only together with the id they were read under. */
  readonly replid = randomBytes(20).toString('hex')
  readonly maxBytes: number
  /** Offset of the next op appended; ops [firstOffset, headOffset) are in the backlog. */
  headOffset = 0
  firstOffset = 0
  /** Called once per append, after the op is in the backlog. */
  onAppend: () => void = () => {}
  /** Called before the op at offset leaves the backlog, so that ops not yet sent can still go. */
  beforeTrim: (offset: number) => void = () => {}
  private readonly now: () => number
  // Parallel arrays from `start`: each op, when it was appended, and the bytes appended up to
  // and including it (a running total, so lag in bytes is one subtraction).
  private ops: Buffer[] = []
  // Ops applied for another region (SL.REGION.APPLY): local replicas need them, peer regions must not get them back.
  private foreign: boolean[] = []
  private times: number[] = []
  private runningBytes: number[] = []
  private start = 0
  private totalBytes = 0
  private retainedBytes = 0

  constructor(maxBytes: number, now: () => number = Date.now) {
    this.maxBytes = maxBytes
    this.now = now
  }

  get bytes(): number {
    return this.retainedBytes
  }

  /** foreign: the op came from another region (it is replicated here, never shipped to a region again). */
  append(op: Buffer, foreign = false): void {
    this.ops.push(op)
    this.foreign.push(foreign)
    this.times.push(this.now())
    this.totalBytes += op.length
    this.runningBytes.push(this.totalBytes)
    this.retainedBytes += op.length
    this.headOffset++
    // The newest op always stays, even when it alone is larger than the backlog.
    while (this.retainedBytes > this.maxBytes && this.headOffset - this.firstOffset > 1) {
      this.beforeTrim(this.firstOffset)
      this.retainedBytes -= this.ops[this.start].length
      this.start++
      this.firstOffset++
    }
    if (this.start > 4096 && this.start * 2 > this.ops.length) this.compact()
    this.onAppend()
  }

  /** True when a replica that has applied everything before offset can resume from here. */
  canResumeFrom(offset: number): boolean {
    return offset >= this.firstOffset && offset <= this.headOffset
  }

  /** The ops from offset to the head, or NOT_IN_BACKLOG. */
  readFrom(offset: number): Buffer[] | typeof NOT_IN_BACKLOG {
    if (!this.canResumeFrom(offset)) return NOT_IN_BACKLOG
    return this.ops.slice(this.index(offset), this.ops.length)
  }

  /** Whether the op at offset (in the backlog) came from another region. */
  isForeign(offset: number): boolean {
    return this.foreign[this.index(offset)]
  }

  /** The op at offset (in the backlog): one at a time, for a reader that walks the log without copying it. */
  opAt(offset: number): Buffer {
    return this.ops[this.index(offset)]
  }

  /** Lag of a peer that has applied everything before offset: in ops, bytes and seconds. */
  lagBehind(offset: number): { ops: number; bytes: number; seconds: number } {
    const ops = Math.max(0, this.headOffset - offset)
    if (ops === 0) return { ops: 0, bytes: 0, seconds: 0 }
    // Past the backlog's start the ops are gone: count from the oldest op still held.
    const oldest = this.index(Math.max(offset, this.firstOffset))
    const bytes = this.totalBytes - (this.runningBytes[oldest] - this.ops[oldest].length)
    const seconds = Math.max(0, this.now() - this.times[oldest]) / 1000
    return { ops, bytes, seconds }
  }

  private index(offset: number): number {
    return this.start + (offset - this.firstOffset)
  }

  private compact(): void {
    this.ops = this.ops.slice(this.start)
    this.foreign = this.foreign.slice(this.start)
    this.times = this.times.slice(this.start)
    this.runningBytes = this.runningBytes.slice(this.start)
    this.start = 0
  }
}
