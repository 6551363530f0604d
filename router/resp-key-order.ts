// The order of one RESP connection's pipelined commands on each key: they run concurrently, yet a
// command after a write to its key waits for that write, and a write waits for what came before it.
import type { Op, OpResult } from './routes/route.ts'

/** What is in flight on one key. */
interface KeyState {
  /** The last write on this key, while in flight: later commands wait for it. */
  write: Promise<unknown> | null
  /** Settles once every op so far on this key has (fulfilled or not): what the next write waits for. */
  all: Promise<unknown>
  /** Ops in flight on this key; at 0 the key is forgotten. */
  pending: number
}

const READS: ReadonlySet<Op['kind']> = new Set(['get', 'ttl', 'counter'])
const ignore = () => undefined

/**
 * Redis runs a connection's commands one after another, so a pipelined SET k then GET k reads
 * what the SET wrote. Here they run at once through the route tree (on different shard
 * connections, or a hot key's copies), so ops on the same key are ordered: reads between two
 * writes still run together, and ops on different keys never wait for each other.
 */
export class KeyOrder {
  private readonly keys = new Map<string, KeyState>()

  route(op: Op, send: (op: Op) => Promise<OpResult>): Promise<OpResult> {
    const isRead = READS.has(op.kind)
    let state = this.keys.get(op.key)
    let outcome: Promise<OpResult>
    if (state === undefined) {
      // The common case, a key with nothing in flight: no promise beyond the op's own and its count's.
      outcome = send(op)
      state = { write: isRead ? null : outcome, all: outcome, pending: 0 }
      this.keys.set(op.key, state)
    } else {
      const after = () => send(op)
      if (isRead) {
        outcome = state.write === null ? send(op) : state.write.then(after, after)
        // Without the values: a long run of reads must not hold every one it read.
        state.all = Promise.allSettled([state.all, outcome]).then(ignore)
      } else {
        outcome = state.all.then(after, after)
        state.write = outcome
        state.all = outcome
      }
    }
    state.pending++
    const settled = () => {
      if (--state.pending === 0) this.keys.delete(op.key)
    }
    outcome.then(settled, settled)
    return outcome
  }
}
