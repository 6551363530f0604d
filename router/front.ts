// The router's HTTP front (the seed API): GET/POST/DELETE /:key and POST /-/batch. Turns each
// request into Ops for the current route tree and each result into a JSON (or raw) reply.
import { performance } from 'node:perf_hooks'
import type { HybridLogicalClock } from '../common/hlc.ts'
import { HttpError } from '../common/http-errors.ts'
import { createHttpServer } from '../common/http-server.ts'
import { keyFromPath, readWriteRequest, ttlToMs, wantsRawBytes, writeBodySchema, writeRouteBodySchema } from '../common/key-api.ts'
import type { Logger } from '../common/logger.ts'
import { encodeJsonValue, jsonValueBody } from '../common/value-codec.ts'
import type { RouterConfig } from './config.ts'
import type { FrontOp, RouterMetrics } from './metrics.ts'
import type { RouteTree } from './route-tree.ts'
import type { Op, OpResult } from './routes/route.ts'

export interface FrontOptions {
  log: Logger
  /** Sizes the body limit, fixed while the process runs; the other limits follow each reload. */
  maxValueBytes: number
  accessLog: boolean
  clock: HybridLogicalClock
  metrics: RouterMetrics
  /** The tree to route through; read once per request so a reload never splits one. */
  tree(): RouteTree
}

/** The batch path: a literal "/" cannot appear in a key's path segment, so no key reaches it. */
export const BATCH_PATH = '/-/batch'

const NOT_FOUND = '{"error":"not found","code":"not_found"}'

export function createFront(options: FrontOptions) {
  const { clock, metrics } = options
  const app = createHttpServer({ log: options.log, bodyLimit: options.maxValueBytes * 2 + 4096, accessLog: options.accessLog })
  // Every reply, errors included, is counted by op and status. Declared up front so every
  // request object keeps one shape.
  app.decorateRequest('startedAt', 0)
  app.decorateRequest('frontOp', undefined)
  app.addHook('onRequest', async (request) => {
    request.startedAt = performance.now()
  })
  app.addHook('onResponse', async (request, reply) => {
    metrics.observe(request.frontOp ?? 'get', reply.statusCode, request.startedAt)
  })

  app.get<{ Params: { key: string } }>('/:key', async (request, reply) => {
    request.frontOp = 'get'
    const tree = options.tree()
    const result = await tree.route({ kind: 'get', key: keyFromPath(request.params.key, tree.config.limits.maxKeyBytes) })
    if (result.kind !== 'get' || !result.found) return reply.code(404).type('application/json').send(NOT_FOUND)
    if (wantsRawBytes(request.headers.accept)) return reply.type('application/octet-stream').send(result.value)
    return reply.type('application/json').send(jsonValueBody(result.value, result.flags))
  })

  app.post<{ Params: { key: string }; Querystring: { ttl?: string } }>('/:key', { schema: { body: writeRouteBodySchema } }, async (request) => {
    request.frontOp = 'set'
    const tree = options.tree()
    const key = keyFromPath(request.params.key, tree.config.limits.maxKeyBytes)
    const write = readWriteRequest(request.body, request.query.ttl, tree.config.limits.maxValueBytes)
    const result = await tree.route({ kind: 'set', key, value: write.bytes, flags: write.flags, ttlMs: write.ttlMs, version: clock.next() })
    return { stored: result.kind === 'set' && result.stored }
  })

  app.delete<{ Params: { key: string } }>('/:key', async (request) => {
    request.frontOp = 'delete'
    const tree = options.tree()
    const result = await tree.route({ kind: 'delete', key: keyFromPath(request.params.key, tree.config.limits.maxKeyBytes), version: clock.next() })
    return { deleted: result.kind === 'delete' && result.deleted }
  })

  // Counters: POST /:key/incr {"by": n} adds (a hot counter's increments are batched over
  // sub-counters); GET /:key/counter reads the exact total. The second path segment is literal,
  // so no key (whose "/" would be percent-encoded) reaches these routes.
  app.post<{ Params: { key: string }; Body: { by?: number } }>('/:key/incr', {
    schema: { body: { type: 'object', additionalProperties: false, properties: { by: { type: 'integer', minimum: -(2 ** 53 - 1), maximum: 2 ** 53 - 1 } } } },
  }, async (request) => {
    request.frontOp = 'incr'
    const tree = options.tree()
    const result = await tree.route({ kind: 'incr', key: keyFromPath(request.params.key, tree.config.limits.maxKeyBytes), by: request.body?.by ?? 1 })
    // A batched increment's new total is not known without reading every sub-counter.
    return result.kind === 'incr' && result.value !== null ? { value: result.value } : { acknowledged: true }
  })

  app.get<{ Params: { key: string } }>('/:key/counter', async (request) => {
    request.frontOp = 'counter'
    const tree = options.tree()
    const result = await tree.route({ kind: 'counter', key: keyFromPath(request.params.key, tree.config.limits.maxKeyBytes) })
    return { value: result.kind === 'counter' ? result.value : 0 }
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
              properties: { op: { enum: ['get', 'set', 'delete'] }, key: { type: 'string' }, value: {}, ttl: writeBodySchema.properties.ttl },
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
    // Validate every op before sending any, so a bad batch changes nothing.
    const ops = request.body.ops.map((item, index) => {
      try {
        return toOp(item, tree.config.limits)
      } catch (error) {
        if (error instanceof HttpError) throw new HttpError(error.statusCode, error.code, `ops[${index}]: ${error.message}`)
        throw error
      }
    })
    // Ops go out together; the shard connections pipeline everything sent in one turn, so a
    // batch costs one write per shard.
    const results = await Promise.all(ops.map((op) => tree.route(op).then(renderResult, renderError)))
    return reply.type('application/json').send(`{"results":[${results.join(',')}]}`)
  })

  function toOp(item: BatchItem, limits: RouterConfig['limits']): Op {
    const key = keyFromPath(item.key, limits.maxKeyBytes)
    if (item.op === 'get' || item.op === 'delete') {
      if (item.value !== undefined || item.ttl !== undefined) throw new HttpError(400, 'invalid_request', `${item.op} takes no value or ttl`)
      return item.op === 'get' ? { kind: 'get', key } : { kind: 'delete', key, version: clock.next() }
    }
    if (!('value' in item)) throw new HttpError(400, 'invalid_request', 'set needs a value')
    const encoded = encodeJsonValue(item.value)
    if (encoded.bytes.length > limits.maxValueBytes) throw new HttpError(413, 'too_large', `value is ${encoded.bytes.length} bytes, the limit is ${limits.maxValueBytes}`)
    return { kind: 'set', key, value: encoded.bytes, flags: encoded.flags, ttlMs: ttlToMs(item.ttl), version: clock.next() }
  }

  return app
}

interface BatchItem {
  op: 'get' | 'set' | 'delete'
  key: string
  value?: unknown
  ttl?: number
}

function renderResult(result: OpResult): string {
  switch (result.kind) {
    case 'get':
      return result.found ? jsonValueBody(result.value, result.flags) : NOT_FOUND
    case 'set':
      return `{"stored":${result.stored}}`
    case 'delete':
      return `{"deleted":${result.deleted}}`
    default:
      throw new Error(`a batch has no ${result.kind} ops`)
  }
}

function renderError(error: unknown): string {
  if (error instanceof HttpError) return JSON.stringify({ error: error.message, code: error.code })
  throw error
}

declare module 'fastify' {
  interface FastifyRequest {
    startedAt: number
    frontOp?: FrontOp
  }
}
