// The shard's admin HTTP server (fastify, HTTPS with the shard's TLS files): /metrics, /healthz,
// /readyz, /stats, and the seed's key API under /keys/:key for direct debugging, sharing the value
// rule in value-codec.ts. With auth, all but the probes need an internal password as a bearer token.
import type { Logger } from '../common/logger.ts'
import { HttpError, errorBody } from '../common/http-errors.ts'
import type { ServerTls } from '../common/tls-files.ts'
import { createHttpServer } from '../common/http-server.ts'
import { keyFromPath, readWriteRequest, wantsRawBytes, writeRouteBodySchema } from '../common/key-api.ts'
import { jsonValueBody } from '../common/value-codec.ts'
import { entryFlags, entryValue } from './entry.ts'
import type { ShardMetrics } from './metrics.ts'
import type { Store } from './store.ts'
import type { CommandLimits } from './commands.ts'
import type { ShardAuth } from './shard-auth.ts'

export interface AdminOptions {
  store: Store
  metrics: ShardMetrics
  limits: CommandLimits
  log: Logger
  stats(): Record<string, unknown>
  /** Why /readyz says 503 (shutting down, warming up, catching up), or null when ready. */
  notReadyBecause(): string | null
  auth: ShardAuth | null
  tls: ServerTls | null
  onTlsFailure?(error: Error): void
}

/** What answers without a token: probes must work without credentials. */
const HEALTH_PROBES = new Set(['/healthz', '/readyz'])

export function createAdminServer(options: AdminOptions) {
  const { store, metrics, limits } = options
  // JSON escapes can double a value's size; the value limit itself is checked after decoding.
  const app = createHttpServer({ log: options.log, bodyLimit: limits.maxValueBytes * 2 + 4096, tls: options.tls ?? undefined, onTlsFailure: options.onTlsFailure })
  const auth = options.auth
  // Before routing, so that what is refused reaches no handler (unknown paths included).
  if (auth) {
    app.addHook('onRequest', (request, reply, done) => {
      if (HEALTH_PROBES.has(request.routeOptions.url ?? '')) return done()
      const outcome = auth.bearerAllowed(request.headers.authorization)
      if (outcome === 'ok') return done()
      auth.refused(outcome, { remote: request.ip, admin: request.method })
      reply.code(401).header('www-authenticate', 'Bearer realm="shardline"').type('application/json')
        .send(errorBody(outcome === 'noauth' ? 'the shard admin needs an internal password: Authorization: Bearer <password>' : 'the token is not valid', 'unauthorized'))
    })
  }

  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType)
    return metrics.registry.metrics()
  })
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    const because = options.notReadyBecause()
    if (because !== null) return reply.code(503).send({ error: `not ready: ${because}`, code: 'not_ready' })
    return { status: 'ready' }
  })
  app.get('/stats', async () => options.stats())

  app.get<{ Params: { key: string } }>('/keys/:key', async (request, reply) => {
    const packed = store.get(keyFromPath(request.params.key, limits.maxKeyBytes))
    if (packed === undefined) throw new HttpError(404, 'not_found', 'not found')
    const bytes = Buffer.from(entryValue(packed), 'latin1')
    if (wantsRawBytes(request.headers.accept)) return reply.type('application/octet-stream').send(bytes)
    return reply.type('application/json').send(jsonValueBody(bytes, entryFlags(packed)))
  })

  app.post<{ Params: { key: string }; Querystring: { ttl?: string } }>('/keys/:key', { schema: { body: writeRouteBodySchema } }, async (request) => {
    const key = keyFromPath(request.params.key, limits.maxKeyBytes)
    const write = readWriteRequest(request.body, request.query.ttl, limits.maxValueBytes)
    store.set(key, write.bytes, { ttlMs: write.ttlMs, flags: write.flags })
    return { stored: true }
  })

  app.delete<{ Params: { key: string } }>('/keys/:key', async (request) => {
    return { deleted: store.delete(keyFromPath(request.params.key, limits.maxKeyBytes)) }
  })
  return app
}
