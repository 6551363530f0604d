// The shard's admin HTTP server (fastify): /metrics, /healthz, /readyz, /stats, and the seed's
// key API under /keys/:key for direct debugging, sharing the value rule in value-codec.ts.
import type { Logger } from '../common/logger.ts'
import { HttpError } from '../common/http-errors.ts'
import { createHttpServer } from '../common/http-server.ts'
import { keyFromPath, ttlToMs } from '../common/http-key.ts'
import { decodeToJson, encodeJsonValue, type EncodedValue } from '../common/value-codec.ts'
import { entryFlags, entryValue } from './entry.ts'
import type { ShardMetrics } from './metrics.ts'
import type { Store } from './store.ts'
import type { CommandLimits } from './commands.ts'

export interface AdminOptions {
  store: Store
  metrics: ShardMetrics
  limits: CommandLimits
  log: Logger
  stats(): Record<string, unknown>
  ready(): boolean
}

const keyBodySchema = {
  type: 'object',
  required: ['value'],
  additionalProperties: false,
  properties: { value: {}, ttl: { type: 'number', exclusiveMinimum: 0 } },
} as const

export function createAdminServer(options: AdminOptions) {
  const { store, metrics, limits } = options
  // JSON escapes can double a value's size; the value limit itself is checked after decoding.
  const app = createHttpServer({ log: options.log, bodyLimit: limits.maxValueBytes * 2 + 4096 })
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))

  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType)
    return metrics.registry.metrics()
  })
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    if (!options.ready()) return reply.code(503).send({ error: 'not ready', code: 'not_ready' })
    return { status: 'ready' }
  })
  app.get('/stats', async () => options.stats())

  app.get<{ Params: { key: string } }>('/keys/:key', async (request, reply) => {
    const packed = store.get(keyFromPath(request.params.key, limits.maxKeyBytes))
    if (packed === undefined) throw new HttpError(404, 'not_found', 'not found')
    const bytes = Buffer.from(entryValue(packed), 'latin1')
    if (wantsBytes(request.headers.accept)) return reply.type('application/octet-stream').send(bytes)
    return decodeToJson(bytes, entryFlags(packed))
  })

  app.post<{ Params: { key: string }; Querystring: { ttl?: string } }>('/keys/:key', {
    schema: { body: { content: { 'application/json': { schema: keyBodySchema }, 'application/octet-stream': { schema: {} } } } },
  }, async (request) => {
    const key = keyFromPath(request.params.key, limits.maxKeyBytes)
    let encoded: EncodedValue
    let ttlMs: number | undefined
    if (Buffer.isBuffer(request.body)) {
      encoded = { bytes: request.body, flags: 0 }
      ttlMs = ttlToMs(request.query.ttl)
    } else {
      const body = request.body as { value: unknown; ttl?: number }
      encoded = encodeJsonValue(body.value)
      ttlMs = ttlToMs(body.ttl)
    }
    if (encoded.bytes.length > limits.maxValueBytes) {
      throw new HttpError(413, 'too_large', `value is ${encoded.bytes.length} bytes, the limit is ${limits.maxValueBytes}`)
    }
    store.set(key, encoded.bytes, { ttlMs, flags: encoded.flags })
    return { stored: true }
  })

  app.delete<{ Params: { key: string } }>('/keys/:key', async (request) => {
    return { deleted: store.delete(keyFromPath(request.params.key, limits.maxKeyBytes)) }
  })
  return app
}

function wantsBytes(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('application/octet-stream') && !accept.includes('application/json')
}
