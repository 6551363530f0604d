// Automatic batching: the gets, sets and deletes issued in one event-loop turn leave together as one
// POST /-/batch (split at the router's limits), a lone op as its plain request; each caller's abort is its own.
import { batchRequest, batchResults, exchange, refusesCaller, routerError, type KeyOp, type Requester } from './http-ops.ts'

export interface BatchLimits {
  /** Ops per batch: the router's limits.maxBatchOps (it refuses a larger batch). */
  maxOps: number
  /** A batch body's bytes, below the router's body limit (twice its limits.maxValueBytes). */
  maxBodyBytes: number
}

/** A caller's op, queued or sent. */
interface Pending {
  op: KeyOp<unknown>
  signal: AbortSignal
  resolve(value: unknown): void
  reject(error: unknown): void
  settled: boolean
  /** While it travels in a batch: settles it at its caller's abort, whatever the rest of the batch does. */
  onAbort: (() => void) | null
}

/** One batch request: abandoned (aborted) once every caller it carries has given up. */
class SharedRequest {
  readonly controller = new AbortController()
  private waiting: number

  constructor(ops: number) {
    this.waiting = ops
  }

  abandon(): void {
    if (--this.waiting === 0) this.controller.abort()
  }
}

export class Batcher {
  private readonly send: Requester
  private readonly limits: BatchLimits
  private queue: Pending[] = []

  constructor(send: Requester, limits: BatchLimits) {
    this.send = send
    this.limits = limits
  }

  /** The op's result; rejects with the signal's reason once it aborts. */
  submit<T>(op: KeyOp<T>, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // After every microtask of this turn: callers woken together by one answer (a batch's, say) have
      // all queued their next ops by then. A lone op waits for nothing else.
      if (this.queue.push({ op, signal, resolve: resolve as (value: unknown) => void, reject, settled: false, onAbort: null }) === 1) process.nextTick(this.flush)
    })
  }

  private readonly flush = (): void => {
    const queued = this.queue
    this.queue = []
    let chunk: Pending[] = []
    let bytes = 0
    for (const pending of queued) {
      if (pending.signal.aborted) {
        pending.reject(pending.signal.reason)
        continue
      }
      const size = Buffer.byteLength(pending.op.fragment) + 1
      if (chunk.length > 0 && (chunk.length === this.limits.maxOps || bytes + size > this.limits.maxBodyBytes)) {
        this.sendChunk(chunk)
        chunk = []
        bytes = 0
      }
      chunk.push(pending)
      bytes += size
    }
    if (chunk.length > 0) this.sendChunk(chunk)
  }

  private sendChunk(chunk: Pending[]): void {
    if (chunk.length === 1) this.sendAlone(chunk[0])
    else void this.sendBatch(chunk)
  }

  /** Its plain request, under its caller's own signal. */
  private sendAlone(pending: Pending): void {
    exchange(this.send, pending.op, pending.signal).then(
      (result) => settle(pending, () => result),
      (error: unknown) => settle(pending, () => {
        throw error
      }),
    )
  }

  private async sendBatch(chunk: Pending[]): Promise<void> {
    const request = new SharedRequest(chunk.length)
    for (const pending of chunk) {
      pending.onAbort = () => {
        settle(pending, () => {
          throw pending.signal.reason
        })
        request.abandon()
      }
      pending.signal.addEventListener('abort', pending.onAbort, { once: true })
    }
    try {
      const answer = await this.send(batchRequest(chunk.map((pending) => pending.op)), request.controller.signal)
      if (refusesCaller(answer)) {
        const error = routerError(answer)
        return chunk.forEach((pending) => settle(pending, () => {
          throw error
        }))
      }
      // Refused whole (an op the router refuses, a limit of this router's): each op goes alone and gets
      // its own answer, so one caller's bad key or large value never fails the others.
      if (answer.status >= 400 && answer.status < 500) return chunk.filter((pending) => !pending.settled).forEach((pending) => this.sendAlone(pending))
      const results = batchResults(answer, chunk.length)
      chunk.forEach((pending, index) => settle(pending, () => pending.op.readResult(results[index])))
    } catch (error) {
      for (const pending of chunk) {
        settle(pending, () => {
          throw pending.op.lost(error)
        })
      }
    }
  }
}

/** Settles a caller's op once, with what `result` returns or throws. */
function settle(pending: Pending, result: () => unknown): void {
  if (pending.settled) return
  pending.settled = true
  if (pending.onAbort) pending.signal.removeEventListener('abort', pending.onAbort)
  try {
    pending.resolve(result())
  } catch (error) {
    pending.reject(error)
  }
}
