// HTTP mode's Transport: an undici keep-alive pool to the router (with the tenant's token on every request,
// and the router's CA when it is a private one); gets, sets and deletes batched per
// event-loop turn; idempotent calls retried with jittered exponential backoff on 503, 504 and lost connections, increments never.
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from 'undici'
import { Batcher } from './http-batcher.ts'
import { counterExchange, deleteOp, exchange, getOp, incrExchange, isRetryable, setOp, type KeyOp, type Requester } from './http-ops.ts'
import type { CacheValue, Entry, Transport } from './types.ts'
import type { ReadAs } from './values.ts'

export interface HttpTransportOptions {
  /** The router's origin, e.g. http://shardline-router:8080. */
  origin: string
  /** Keep-alive connections to the router. */
  connections: number
  /** Tries of an idempotent call after the first. */
  retries: number
  /** Sent as Authorization: Bearer on every request. */
  token?: string
  /** The CA to verify an https router's certificate with, in place of the system's. */
  ca?: string | Buffer
}

/** The router's default limits.maxBatchOps (router/config.ts): it refuses larger batches. */
const MAX_BATCH_OPS = 1000
/** Half the router's default body limit (twice limits.maxValueBytes, 1 MiB by default), so a batch of small values is never refused for its size. */
const MAX_BATCH_BODY_BYTES = 1024 * 1024
/** The first retry waits 25-50 ms, each next one up to twice as long, at most 1 s. */
const BACKOFF = { firstMs: 50, maxMs: 1000 }

export class HttpTransport implements Transport {
  private readonly pool: Pool
  private readonly retries: number
  private readonly batcher: Batcher
  private readonly authorization: string | undefined

  constructor(options: HttpTransportOptions) {
    this.pool = new Pool(options.origin, { connections: options.connections, ...(options.ca === undefined ? {} : { connect: { ca: options.ca } }) })
    this.retries = options.retries
    this.authorization = options.token === undefined ? undefined : `Bearer ${options.token}`
    this.batcher = new Batcher(this.send, { maxOps: MAX_BATCH_OPS, maxBodyBytes: MAX_BATCH_BODY_BYTES })
  }

  get(keys: readonly string[], as: ReadAs, signal: AbortSignal): Promise<Array<CacheValue | null>> {
    return Promise.all(keys.map((key) => this.retrying(signal, getOp(key, as))))
  }

  set(entries: readonly Entry[], ttlMs: number | undefined, signal: AbortSignal): Promise<boolean[]> {
    // Every value is encoded before any is sent, so a value JSON cannot hold fails the call and writes nothing.
    const ops = entries.map(([key, value]) => setOp(key, value, ttlMs))
    return Promise.all(ops.map((op) => this.retrying(signal, op)))
  }

  del(key: string, signal: AbortSignal): Promise<boolean> {
    return this.retrying(signal, deleteOp(key))
  }

  incr(key: string, by: bigint, signal: AbortSignal): Promise<bigint | null> {
    return exchange(this.send, incrExchange(key, by), signal)
  }

  counter(key: string, signal: AbortSignal): Promise<bigint> {
    const read = counterExchange(key)
    return this.withRetries(signal, () => exchange(this.send, read, signal))
  }

  close(): Promise<void> {
    return this.pool.close()
  }

  private readonly send: Requester = async (request, signal) => {
    const headers = this.authorization === undefined ? request.headers : { ...request.headers, authorization: this.authorization }
    const response = await this.pool.request({ ...request, headers, signal })
    const body = Buffer.from(await response.body.arrayBuffer())
    const retryAfter = response.headers['retry-after']
    return { status: response.statusCode, body, ...(typeof retryAfter === 'string' ? { retryAfter } : {}) }
  }

  private retrying<T>(signal: AbortSignal, op: KeyOp<T>): Promise<T> {
    return this.withRetries(signal, () => this.batcher.submit(op, signal))
  }

  private async withRetries<T>(signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
    for (let tried = 0; ; tried++) {
      try {
        return await attempt()
      } catch (error) {
        if (tried === this.retries || !isRetryable(error) || signal.aborted) throw error
        const ceilingMs = Math.min(BACKOFF.maxMs, BACKOFF.firstMs * 2 ** tried)
        // Half fixed, half random: callers failed by one outage come back spread out, never all at once.
        await sleep(ceilingMs / 2 + Math.random() * (ceilingMs / 2), undefined, { signal })
      }
    }
  }
}
