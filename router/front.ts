// The router's HTTP front (the seed API): GET/POST/DELETE /:key, counters and POST /-/batch as Ops
// for the current route tree, results rendered within the per-batch and router-wide response budgets.
// With tenants, each request's bearer token names its tenant, whose permissions and rate limit let it in.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ShedReason } from '../common/connection-limiter.ts'
import type { HybridLogicalClock } from '../common/hlc.ts'
import { HttpError, errorBody } from '../common/http-errors.ts'
import { createHttpServer, type ConnectionSettings } from '../common/http-server.ts'
import { keyFromPath, readWriteRequest, ttlSchema, ttlToMs, wantsRawBytes, writeRouteBodySchema } from '../common/key-api.ts'
import type { Logger } from '../common/logger.ts'
import type { ServerTls } from '../common/tls-files.ts'
import { encodeJsonValue, jsonValueBody, jsonValueParts } from '../common/value-codec.ts'
import type { Permission, RouterConfig } from './config.ts'
import type { FrontOp, RouterMetrics } from './metrics.ts'
import type { RouteTree } from './route-tree.ts'
import type { ResponseBudget } from './response-budget.ts'
import type { Op, OpResult } from './routes/route.ts'
import { admit, forbidden, rateLimitedMessage } from './routes/tenant-route.ts'
import type { Tenant } from './tenants.ts'

export interface FrontOptions {
  log: Logger
  /** Sizes the body limit, fixed while the process runs; the other limits follow each reload. */
  maxValueBytes: number
  /** The data port's connection cap and timeouts, fixed while the process runs. */
  connections: ConnectionSettings
  onConnectionShed?(reason: ShedReason): void
  accessLog: boolean
  clock: HybridLogicalClock
  metrics: RouterMetrics
  /** Values held by responses in progress, router-wide (shared with the RESP front). */
  budget: ResponseBudget
  /** The tree to route through; read once per request so a reload never splits one. */
  tree(): RouteTree
  /** Serve HTTPS with these certificates (reloaded as their files change). */
  tls?: ServerTls
  onTlsFailure?(error: Error, remoteAddress: string | undefined): void
}

/** The batch path: a literal "/" cannot appear in a key's path segment, so no key reaches it. */
export const BATCH_PATH = '/-/batch'

const NOT_FOUND = '{"error":"not found","code":"not_found"}'

/** An increment's range: what a JSON number holds exactly. */
const MAX_INCREMENT = 2 ** 53 - 1

export function createFront(options: FrontOptions) {
  const { clock, metrics } = options
  const app = createHttpServer({
    log: options.log,
    name: 'data port',
    bodyLimit: options.maxValueBytes * 2 + 4096,
    accessLog: options.accessLog,
    connections: options.connections,
    onConnectionShed: options.onConnectionShed,
    maxJsonDepth: () => options.tree().config.limits.maxJsonDepth,
    tls: options.tls,
    onTlsFailure: options.onTlsFailure,
  })
  const { budget } = options
  // Every reply, errors included, is counted by op and status, timed by fastify (elapsedTime runs
  // from routing to the response's end). Declared up front so every request object keeps one shape.
  app.decorateRequest('frontOp', undefined)
  app.decorateRequest('heldBytes', 0)
  app.decorateRequest('tenant', undefined)
  // A callback hook: an async one costs a promise and a microtask on every request.
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observe(request.frontOp ?? 'get', reply.statusCode, reply.elapsedTime)
    done()
  })

  // Every request, unknown paths too, names its tenant when there are tenants (one boolean when not).
  app.addHook('onRequest', (request, reply, done) => {
    const tree = options.tree()
    if (tree.access.open) return done()
    const found = tree.access.authenticateHeader(request.raw.socket, request.headers.authorization)
    if (typeof found !== 'string') {
      request.tenant = found
      return done()
    }
    tree.authFailures.record(found, request.ip, 'data')
    const message = found === 'missing_token' ? 'this router needs a tenant\'s token: Authorization: Bearer <token>' : 'the token is not valid'
    reply.code(401).header('www-authenticate', 'Bearer realm="shardline"').type('application/json').send(errorBody(message, 'unauthorized'))
  })

  /** The request's tenant, let in for what it needs (both, for a batch of reads and writes) at cost ops; undefined without tenants. */
  function letIn(request: FastifyRequest, reply: FastifyReply, tree: RouteTree, cost: number, needs: Permission, alsoNeeds?: Permission): Tenant | undefined {
    const tenant = request.tenant
    if (tenant === undefined) return undefined
    const refusal = admit(tenant, needs, cost, metrics, alsoNeeds)
    if (refusal === 0) return tenant
    if (typeof refusal === 'string') {
      tree.authFailures.record('forbidden', request.ip, 'data')
      throw forbidden(tenant, refusal)
    }
    reply.header('retry-after', String(Math.max(1, Math.ceil(refusal / 1000))))
    throw new HttpError(429, 'rate_limited', rateLimitedMessage(tenant, refusal))
  }

  app.get<{ Params: { key: string } }>('/:key', async (request, reply) => {
    request.frontOp = 'get'
    const tree = options.tree()
    const tenant = letIn(request, reply, tree, 1, 'read')
    const result = await tree.route({ kind: 'get', key: keyFromPath(request.params.key, tree.config.limits.maxKeyBytes), tenant })
    if (result.kind !== 'get' || !result.found) return reply.code(404).type('application/json').send(NOT_FOUND)
    budget.hold(request, reply, result.value.length, tree.config.limits.maxInFlightResponseBytes)
    if (wantsRawBytes(request.headers.accept)) return reply.type('application/octet-stream').send(result.value)
    return reply.type('application/json').send(jsonValueBody(result.value, result.flags))
  })

  app.post<{ Params: { key: string }; Querystring: { ttl?: string } }>('/:key', { schema: { body: writeRouteBodySchema } }, async (request, reply) => {
    request.frontOp = 'set'
    const tree = options.tree()
    const tenant = letIn(request, reply, tree, 1, 'write')
    const key = keyFromPath(request.params.key, tree.config.limits.maxKeyBytes)
    const write = readWriteRequest(request.body, request.query.ttl, tree.config.limits.maxValueBytes)
    const result = await tree.route({ kind: 'set', key, value: write.bytes, flags: write.flags, ttlMs: write.ttlMs, version: clock.next(), tenant })
    return { stored: result.kind === 'set' && result.stored }
  })

  app.delete<{ Params: { key: string } }>('/:key', async (request, reply) => {
    request.frontOp = 'delete'
    const tree = options.tree()
    const tenant = letIn(request, reply, tree, 1, 'write')
    const result = await tree.route({ kind: 'delete', key: keyFromPath(request.params.key, tree.config.limits.maxKeyBytes), version: clock.next(), tenant })
    return { deleted: result.kind === 'delete' && result.deleted }
  })

  // Counters: POST /:key/incr {"by": n} adds (a hot counter's increments are batched over
  // sub-counters); GET /:key/counter reads the exact total. The second path segment is literal,
  // so no key (whose "/" would be percent-encoded) reaches these routes. Totals are signed 64-bit,
  // written as JSON number text even past 2^53 (JSON.stringify cannot write a bigint).
  app.post<{ Params: { key: string }; Body: { by?: number } }>('/:key/incr', {
    schema: { body: { type: 'object', additionalProperties: false, properties: { by: { type: 'integer', minimum: -MAX_INCREMENT, maximum: MAX_INCREMENT } } } },
    // No body, or an empty one, is an increment by 1.
    preValidation: async (request) => {
      if (request.body === undefined || (Buffer.isBuffer(request.body) && request.body.length === 0)) request.body = {}
    },
  }, async (request, reply) => {
    request.frontOp = 'incr'
    const tree = options.tree()
    const tenant = letIn(request, reply, tree, 1, 'write')
    const result = await tree.route({ kind: 'incr', key: keyFromPath(request.params.key, tree.config.limits.maxKeyBytes), by: BigInt(request.body.by ?? 1), tenant })
    // A batched increment's new total is not known without reading every sub-counter.
    if (result.kind === 'incr' && result.value !== null) return reply.type('application/json').send(`{"value":${result.value}}`)
    return { acknowledged: true }
  })

  app.get<{ Params: { key: string } }>('/:key/counter', async (request, reply) => {
    request.frontOp = 'counter'
    const tree = options.tree()
    const tenant = letIn(request, reply, tree, 1, 'read')
    const result = await tree.route({ kind: 'counter', key: keyFromPath(request.params.key, tree.config.limits.maxKeyBytes), tenant })
    return reply.type('application/json').send(`{"value":${result.kind === 'counter' ? result.value : 0}}`)
  })

  app.post<{ Body: { ops: BatchItem[] } }>(BATCH_PATH, {
    schema: {
      body: {
        type: 'object',
        required: ['ops'],
        additionalProperties: false,
        properties: {
          ops: {
            type: 'array',
            items: {
              type: 'object',
              required: ['op', 'key'],
              additionalProperties: false,
              // encoding "base64": a set's value is raw bytes as base64 (stored as they are, like an
              // octet-stream POST), the form a batch read answers bytes that are not UTF-8 in.
              properties: { op: { enum: ['get', 'set', 'delete'] }, key: { type: 'string' }, value: {}, ttl: ttlSchema, encoding: { const: 'base64' } },
            },
          },
        },
      },
    },
  }, async (request, reply) => {
    request.frontOp = 'batch'
    const tree = options.tree()
    // Checked here rather than in the schema so that a reloaded limit applies at once.
    if (request.body.ops.length > tree.config.limits.maxBatchOps) {
      throw new HttpError(400, 'invalid_request', `a batch holds at most ${tree.config.limits.maxBatchOps} ops, this one ${request.body.ops.length}`)
    }
    // Every op's permission, then the batch's cost (its op count), before any op is sent.
    const readsAny = request.body.ops.some((item) => item.op === 'get')
    const writesAny = request.body.ops.some((item) => item.op !== 'get')
    const tenant = request.body.ops.length === 0 ? undefined : letIn(request, reply, tree, request.body.ops.length, readsAny ? 'read' : 'write', readsAny && writesAny ? 'write' : undefined)
    // Validate every op before sending any, so a bad batch changes nothing.
    const ops = request.body.ops.map((item, index) => {
      try {
        return toOp(item, tree.config.limits, tenant)
      } catch (error) {
        if (error instanceof HttpError) throw new HttpError(error.statusCode, error.code, `ops[${index}]: ${error.message}`)
        throw error
      }
    })
    // Ops go out together; the shard connections pipeline everything sent in one turn, so a
    // batch costs one write per shard. A key read more than once is read once: the ops of a
    // batch run concurrently anyway, and a shard never sends one value many times for one batch.
    const reads = new Map<string, PendingResult>()
    const pending: PendingResult[] = []
    ops.forEach((op, index) => {
      const shared = op.kind === 'get' ? reads.get(op.key) : undefined
      if (shared !== undefined) return void shared.indices.push(index)
      const read = { outcome: tree.route(op), indices: [index] }
      pending.push(read)
      if (op.kind === 'get') reads.set(op.key, read)
    })
    const { maxBatchResponseBytes, maxInFlightResponseBytes } = tree.config.limits
    const holdValue = (result: OpResult, copies: number) => {
      if (result.kind === 'get' && result.found) budget.hold(request, reply, result.value.length * copies, maxInFlightResponseBytes)
    }
    return reply.type('application/json').send(await renderBatch(pending, ops.length, holdValue, maxBatchResponseBytes))
  })

  function toOp(item: BatchItem, limits: RouterConfig['limits'], tenant: Tenant | undefined): Op {
    const key = keyFromPath(item.key, limits.maxKeyBytes)
    if (item.op === 'get' || item.op === 'delete') {
      if (item.value !== undefined || item.ttl !== undefined || item.encoding !== undefined) throw new HttpError(400, 'invalid_request', `${item.op} takes no value, ttl or encoding`)
      return item.op === 'get' ? { kind: 'get', key, tenant } : { kind: 'delete', key, version: clock.next(), tenant }
    }
    if (!('value' in item)) throw new HttpError(400, 'invalid_request', 'set needs a value')
    const encoded = item.encoding === 'base64' ? { bytes: base64Bytes(item.value), flags: 0 } : encodeJsonValue(item.value)
    if (encoded.bytes.length > limits.maxValueBytes) throw new HttpError(413, 'too_large', `value is ${encoded.bytes.length} bytes, the limit is ${limits.maxValueBytes}`)
    return { kind: 'set', key, value: encoded.bytes, flags: encoded.flags, ttlMs: ttlToMs(item.ttl), version: clock.next(), tenant }
  }

  return app
}

/** How much of a batch is rendered in one event-loop turn before other clients' I/O gets a turn. */
const RENDER_SLICE_BYTES = 256 * 1024

/** An op's outcome, and where in the batch it answers: a key read several times, in several places. */
interface PendingResult {
  outcome: Promise<OpResult>
  indices: number[]
}

/** An outcome as it arrived: its result, or the error that failed it. */
type Arrival = { indices: number[]; ok: true; result: OpResult } | { indices: number[]; ok: false; error: unknown }

const RESULTS_OPEN = Buffer.from('{"results":[')
const RESULTS_CLOSE = Buffer.from(']}')
const COMMA = Buffer.from(',')

/**
 * A batch's response body of `count` results, each outcome rendered once as it arrives (its
 * copies share the rendering) and counted against maxBytes. Past it the batch fails at once with
 * 413: what was rendered is let go, and the results still to come are dropped unrendered. An
 * outcome whose copies cannot fit is refused before it is rendered: a value renders to at least
 * its own bytes, so 1,000 reads of a 1 MiB value cost no escaping, no budget and no render turns.
 * `hold` charges a result's copies to the router's budget before it is rendered (and may refuse
 * it, failing the batch). Results are rendered a slice per event-loop turn, so a batch of large
 * values never holds up other clients for long.
 */
function renderBatch(pending: PendingResult[], count: number, hold: (result: OpResult, copies: number) => void, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let rendered = new Array<Buffer[]>(count)
    let arrived: Arrival[] = []
    let next = 0
    let bytes = RESULTS_OPEN.length + RESULTS_CLOSE.length + Math.max(0, count - 1) * COMMA.length
    let waiting = count
    let failed = false
    let scheduled = false
    const fail = (error: unknown) => {
      failed = true
      rendered = []
      arrived = []
      reject(error)
    }
    const tooLarge = () => new HttpError(413, 'response_too_large', `the batch's response is larger than ${maxBytes} bytes (limits.maxBatchResponseBytes): read large values in smaller batches or singly`)
    const finish = () => {
      const parts: Buffer[] = [RESULTS_OPEN]
      rendered.forEach((result, index) => {
        if (index > 0) parts.push(COMMA)
        parts.push(...result)
      })
      parts.push(RESULTS_CLOSE)
      resolve(Buffer.concat(parts, bytes))
    }
    const renderSlice = () => {
      scheduled = false
      let slice = 0
      while (!failed && next < arrived.length) {
        if (slice >= RENDER_SLICE_BYTES) return schedule()
        const arrival = arrived[next++]
        const copies = arrival.indices.length
        let parts: Buffer[]
        try {
          if (arrival.ok && bytes + copies * valueBytes(arrival.result) > maxBytes) return fail(tooLarge())
          if (arrival.ok) hold(arrival.result, copies)
          parts = arrival.ok ? renderResult(arrival.result) : renderError(arrival.error)
        } catch (error) {
          return fail(error)
        }
        const size = parts.reduce((sum, part) => sum + part.length, 0)
        slice += size
        bytes += copies * size
        if (bytes > maxBytes) return fail(tooLarge())
        for (const index of arrival.indices) rendered[index] = parts
        waiting -= copies
        if (waiting === 0) finish()
      }
    }
    const schedule = () => {
      if (scheduled) return
      scheduled = true
      setImmediate(renderSlice)
    }
    const arrive = (arrival: Arrival) => {
      if (failed) return
      arrived.push(arrival)
      schedule()
    }
    if (waiting === 0) finish()
    for (const { outcome, indices } of pending) outcome.then((result) => arrive({ indices, ok: true, result }), (error: unknown) => arrive({ indices, ok: false, error }))
  })
}

/** A result's value bytes, which its rendering is never shorter than (escapes and base64 only add). */
function valueBytes(result: OpResult): number {
  return result.kind === 'get' && result.found ? result.value.length : 0
}

interface BatchItem {
  op: 'get' | 'set' | 'delete'
  key: string
  value?: unknown
  ttl?: number
  encoding?: 'base64'
}

/** A batch value's bytes from canonical base64 (padded, nothing else in it): Buffer.from would skip any stray character. */
function base64Bytes(value: unknown): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'base64') : null
  if (bytes === null || bytes.toString('base64') !== value) throw new HttpError(400, 'invalid_request', 'a value with encoding "base64" must be a base64 string')
  return bytes
}

const NOT_FOUND_PART = Buffer.from(NOT_FOUND)

function renderResult(result: OpResult): Buffer[] {
  switch (result.kind) {
    case 'get':
      return result.found ? jsonValueParts(result.value, result.flags) : [NOT_FOUND_PART]
    case 'set':
      return [Buffer.from(`{"stored":${result.stored}}`)]
    case 'delete':
      return [Buffer.from(`{"deleted":${result.deleted}}`)]
    default:
      throw new Error(`a batch has no ${result.kind} ops`)
  }
}

function renderError(error: unknown): Buffer[] {
  if (error instanceof HttpError) return [Buffer.from(errorBody(error.message, error.code))]
  throw error
}

declare module 'fastify' {
  interface FastifyRequest {
    frontOp?: FrontOp
    /** Who asked (set on every request once the router has tenants). */
    tenant?: Tenant
  }
}
