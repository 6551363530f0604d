// Creates every fastify server of ours the same way: our logger, an access log only when asked, JSON
// bodies of bounded depth, capped connections that shed idle and slow ones, {error, code} refusals,
// and HTTPS from reloadable certificate files when given them.
import type { Server } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyHttpOptions } from 'fastify'
import { ConnectionLimiter, type ShedReason } from './connection-limiter.ts'
import { HttpError, clientErrorHandler, errorBody, frameworkErrors, installErrorHandlers } from './http-errors.ts'
import { nestsDeeperThan } from './json-depth.ts'
import type { Logger } from './logger.ts'
import type { ServerTls } from './tls-files.ts'

/** A server's connection settings; they are read when it is created (take effect on restart). */
export interface ConnectionSettings {
  /** Open connections at most: past it the longest-idle one is closed, or the new one refused. */
  max: number
  /** An idle keep-alive connection is closed after this long. */
  idleTimeoutMs: number
  /** A request's headers and body must arrive within this; a connection silent this long is closed. */
  requestTimeoutMs: number
}

/** What a server with no settings of its own gets (the shard's admin port). */
export const DEFAULT_CONNECTIONS: ConnectionSettings = { max: 256, idleTimeoutMs: 5000, requestTimeoutMs: 10_000 }
const DEFAULT_MAX_JSON_DEPTH = 64

export interface HttpServerOptions {
  log: Logger
  bodyLimit?: number
  accessLog?: boolean
  connections?: ConnectionSettings
  /** Names the server in log lines. */
  name?: string
  onConnectionShed?(reason: ShedReason): void
  /** Read per request, so that a reloaded limit applies at once. */
  maxJsonDepth?(): number
  /** Serve HTTPS with these certificates (reloaded on change without dropping connections). */
  tls?: ServerTls
  /** A client's TLS handshake failed (it does not trust our CA, an old protocol, a bad client certificate). */
  onTlsFailure?(error: Error, remoteAddress: string | undefined): void
}

export function createHttpServer(options: HttpServerOptions) {
  const connections = options.connections ?? DEFAULT_CONNECTIONS
  // Node keeps an idle connection open a little past the Keep-Alive timeout it announces, so that
  // a client's request sent just before the announced timeout is not lost: the two add up to
  // idleTimeoutMs.
  const keepAliveGraceMs = Math.min(1000, Math.floor(connections.idleTimeoutMs / 5))
  const serverOptions: FastifyHttpOptions<Server> = {
    loggerInstance: options.log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: !options.accessLog }),
    bodyLimit: options.bodyLimit,
    // A 250-byte key percent-encodes to 750 characters; longer ones get our 400, not a 404.
    routerOptions: { maxParamLength: 4096 },
    // A ttl of "10" in a JSON body is a client bug worth a 400, not something to guess at.
    // Unknown fields are refused rather than silently dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    // By default fastify keeps an idle connection 72 s and Node checks request deadlines every 30 s.
    keepAliveTimeout: connections.idleTimeoutMs - keepAliveGraceMs,
    requestTimeout: connections.requestTimeoutMs,
    connectionTimeout: connections.requestTimeoutMs,
    http: {
      keepAliveTimeoutBuffer: keepAliveGraceMs,
      requestTimeout: connections.requestTimeoutMs,
      headersTimeout: connections.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.ceil(connections.requestTimeoutMs / 4)),
    },
    // Refusals made before routing, by Node and by fastify, answer in our shape too.
    frameworkErrors,
    clientErrorHandler: clientErrorHandler(options.log),
    return503OnClosing: false,
  }
  // fastify passes `http` options only to an HTTP server: an HTTPS one takes them with its TLS ones.
  // A handshake gets the time a request's headers get (Node's default is 120 s). fastify's types
  // pick the server kind from the options' type; both kinds serve the same routes.
  const https = options.tls ? { ...serverOptions.http, handshakeTimeout: connections.requestTimeoutMs, ...options.tls.options() } : null
  const app = https ? Fastify({ ...serverOptions, https } as FastifyHttpOptions<Server>) : Fastify(serverOptions)
  if (options.tls) {
    options.tls.attach(app.server as unknown as HttpsServer)
    const onTlsFailure = options.onTlsFailure
    if (onTlsFailure) app.server.on('tlsClientError', (error: Error, socket: TLSSocket) => onTlsFailure(error, socket.remoteAddress))
  }
  new ConnectionLimiter(app.server, { max: connections.max, log: options.log, name: options.name ?? 'HTTP server', onShed: options.onConnectionShed })

  // fastify would answer requests that arrive on open connections while it closes with its own
  // 503 body; the connection closes after ours (fastify sets Connection: close while closing).
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  // A callback hook, not an async one: it runs on every request, and an async hook costs a promise
  // and a microtask each time.
  app.addHook('onRequest', (_request, reply, done) => {
    if (closing) reply.code(503).type('application/json').send(errorBody('the server is shutting down', 'shutting_down'))
    else done()
  })

  // Bodies are JSON or raw bytes (octet-stream); text/plain would be a value of unclear encoding.
  app.removeContentTypeParser('text/plain')
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
  const parseJson = app.getDefaultJsonParser('error', 'error')
  const maxJsonDepth = options.maxJsonDepth ?? (() => DEFAULT_MAX_JSON_DEPTH)
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string
    // An empty body is no body: the route's schema decides whether it needs one.
    if (text.length === 0) return done(null, undefined)
    const maxDepth = maxJsonDepth()
    if (nestsDeeperThan(text, maxDepth)) return done(new HttpError(400, 'too_deep', `JSON nests deeper than ${maxDepth} levels`), undefined)
    parseJson(request, text, done)
  })
  installErrorHandlers(app)
  return app
}
